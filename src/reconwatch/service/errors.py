"""The service's one error shape: Elasticsearch's (`error.root_cause`, `type`, `reason`, `status`)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers={**PRODUCT_HEADER, **(headers or {})},
    )


def error_body(status: int, type_: str, reason: str) -> dict[str, Any]:
    cause = {"type": type_, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def error_response(
    status: int, type_: str, reason: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(error_body(status, type_, reason), status, headers)
