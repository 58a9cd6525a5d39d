"""Running the application under uvicorn: in the foreground (the CLI) or in a thread (tests)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def _server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


def run_on(app: FastAPI, sock: socket.socket) -> None:
    """Serve on a bound socket until SIGINT/SIGTERM (uvicorn's handlers stop it cleanly)."""
    host, port = sock.getsockname()[:2]
    _server(app, host, port).run(sockets=[sock])


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a thread (uvicorn installs signal handlers only in the main thread); yields the base URL (port 0: an ephemeral port the kernel chose)."""
    server = _server(app, host, port)
    thread = threading.Thread(target=server.run, name="reconwatch-http", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                msg = f"the HTTP server did not start on {host}:{port}"
                raise RuntimeError(msg)
            thread.join(0.01)
        sock = server.servers[0].sockets[0]
        bound_host, bound_port = sock.getsockname()[:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join()
