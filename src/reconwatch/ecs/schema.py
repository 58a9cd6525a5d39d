"""The ECS fields reconwatch knows, with the Elasticsearch types Elastic's index templates map them to."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from reconwatch.types import DataType as T

# Fields that are arrays in typical Elastic Defend documents; any field may still hold an array.
MULTIVALUED_FIELDS: frozenset[str] = frozenset(
    {
        "event.category",
        "event.type",
        "host.ip",
        "host.mac",
        "related.ip",
        "related.user",
        "related.hosts",
        "related.hash",
        "tags",
        "process.args",
        "process.parent.args",
        "dns.resolved_ip",
        "threat.tactic.name",
        "threat.technique.id",
    }
)

_IP = (
    "destination.ip source.ip host.ip client.ip server.ip related.ip observer.ip "
    "destination.nat.ip source.nat.ip client.nat.ip server.nat.ip dns.resolved_ip"
)
_DATE = (
    "@timestamp event.ingested event.created event.start event.end "
    "process.start process.end process.parent.start file.created file.mtime file.ctime file.accessed"
)
_LONG = (
    "destination.port source.port client.port server.port destination.bytes source.bytes "
    "client.bytes server.bytes destination.packets source.packets network.bytes network.packets "
    "destination.nat.port source.nat.port process.pid process.parent.pid process.ppid "
    "process.group_leader.pid process.session_leader.pid process.entry_leader.pid "
    "process.thread.id process.parent.thread.id process.exit_code event.duration event.sequence "
    "event.severity file.size process.pgid process.uptime host.uptime "
    "network.iana_number"
)
_INTEGER = "process.args_count process.parent.args_count"
_DOUBLE = "event.risk_score event.risk_score_norm"
_KEYWORD = (
    "agent.id agent.name agent.type agent.version agent.ephemeral_id "
    "data_stream.dataset data_stream.namespace data_stream.type ecs.version "
    "elastic.agent.id "
    "event.action event.category event.code event.dataset event.id event.kind event.module "
    "event.outcome event.provider event.reason event.type event.agent_id_status event.hash "
    "host.architecture host.hostname host.id host.mac host.name host.type host.domain "
    "host.os.family host.os.full host.os.kernel host.os.name host.os.platform host.os.type "
    "host.os.version host.os.Ext.variant "
    "user.id user.name user.domain user.email user.full_name user.group.id user.group.name "
    "user.effective.id user.effective.name "
    "process.entity_id process.executable process.name process.title process.working_directory "
    "process.command_line process.args process.hash.md5 process.hash.sha1 process.hash.sha256 "
    "process.parent.entity_id process.parent.executable process.parent.name "
    "process.parent.command_line process.parent.args process.Ext.ancestry "
    "process.user.id process.user.name process.group.id process.group.name "
    "process.entry_leader.entity_id process.session_leader.entity_id "
    "process.group_leader.entity_id "
    "destination.address destination.domain destination.geo.country_iso_code "
    "destination.geo.region_name destination.geo.city_name destination.as.organization.name "
    "source.address source.domain source.geo.country_iso_code source.as.organization.name "
    "client.address client.domain server.address server.domain "
    "network.direction network.transport network.type network.protocol network.community_id "
    "network.application network.name network.forwarded_ip "
    "dns.question.name dns.question.type dns.question.registered_domain dns.question.subdomain "
    "dns.response_code dns.op_code "
    "file.path file.name file.extension file.directory file.hash.sha256 file.hash.md5 "
    "url.full url.domain url.path url.original url.scheme "
    "related.user related.hosts related.hash tags message "
    "observer.name observer.type observer.vendor observer.product observer.hostname "
    "cloud.provider cloud.region cloud.account.id cloud.instance.id "
    "container.id container.name container.image.name orchestrator.namespace "
    "rule.name rule.id threat.tactic.name threat.technique.id"
)
_TEXT = ""

ECS_FIELDS: Mapping[str, T] = {
    **{name: T.KEYWORD for name in _KEYWORD.split()},
    **{name: T.TEXT for name in _TEXT.split()},
    **{name: T.LONG for name in _LONG.split()},
    **{name: T.INTEGER for name in _INTEGER.split()},
    **{name: T.DOUBLE for name in _DOUBLE.split()},
    **{name: T.DATETIME for name in _DATE.split()},
    **{name: T.IP for name in _IP.split()},
}

# Index patterns whose index templates map ECS (Elastic Defend, Elastic Agent integrations).
ECS_INDEX_PATTERNS: tuple[str, ...] = (
    "logs-endpoint.*",
    "logs-*",
    "metrics-endpoint.*",
    "endgame-*",
    "auditbeat-*",
    "filebeat-*",
    "packetbeat-*",
    "winlogbeat-*",
    "logs-system.*",
    ".alerts-security.*",
)


def is_ecs_index(pattern: str) -> bool:
    """Whether FROM's index pattern selects indices whose template maps the ECS fields."""
    for known in ECS_INDEX_PATTERNS:
        # A user pattern selects an ECS index when either can match the other's names.
        if fnmatch.fnmatchcase(pattern, known) or fnmatch.fnmatchcase(known.rstrip("*"), pattern):
            return True
        if pattern.rstrip("*") and known.startswith(pattern.rstrip("*")):
            return True
    return pattern in ("*", "logs*")


def ecs_type(name: str) -> T | None:
    return ECS_FIELDS.get(name)
