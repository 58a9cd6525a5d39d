"""Who is observing, found on this host: machine id, OS, addresses and the persisted agent id."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import platform
import socket
import struct
import uuid
from pathlib import Path

from reconwatch.ecs.host import HostInfo
from reconwatch.errors import SensorError

DEFAULT_AGENT_ID_FILE = Path("/var/lib/reconwatch/agent-id")
_SIOCGIFADDR = 0x8915


def load_agent_id(path: Path, *, create: bool = True) -> str:
    """Read the persisted agent id, creating it once (atomically) when asked."""
    try:
        text = path.read_text(encoding="ascii").strip()
        return str(uuid.UUID(text))
    except FileNotFoundError:
        if not create:
            raise SensorError(
                f"no agent id at {path}; run `reconwatch sensor` once as root"
            ) from None
    except (ValueError, UnicodeDecodeError):
        raise SensorError(
            f"{path} does not hold a UUID; delete it to create a new agent id"
        ) from None
    except OSError as exc:
        raise SensorError(f"cannot read agent id file {path}: {exc.strerror}") from None
    return _create_agent_id(path)


def _create_agent_id(path: Path) -> str:
    new = str(uuid.uuid4())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(new + "\n", encoding="ascii")
        # link() fails if another sensor won the race; then its id is the one to keep.
        try:
            os.link(tmp, path)
        except FileExistsError:
            return str(uuid.UUID(path.read_text(encoding="ascii").strip()))
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SensorError(
            f"cannot create agent id file {path}: {exc.strerror}; pass --agent-id-file"
        ) from None
    return new


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """os.* fields in the shape Elastic Defend reports them."""
    values: dict[str, str] = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"')
    except OSError:
        pass
    kernel = platform.release()
    doc = {"type": "linux", "kernel": kernel, "platform": values.get("ID", "linux")}
    if "NAME" in values:
        doc["name"] = values["NAME"].removesuffix(" GNU/Linux")
    if "VERSION_ID" in values:
        doc["version"] = values["VERSION_ID"]
    if "ID_LIKE" in values or "ID" in values:
        doc["family"] = values.get("ID_LIKE", values.get("ID", "")).split()[0]
    if "PRETTY_NAME" in values:
        doc["full"] = values["PRETTY_NAME"]
    return doc


def machine_id() -> str:
    for candidate in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            text = candidate.read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text:
            return text
    return ""


def local_ips() -> tuple[str, ...]:
    """Interface addresses without opening any connection (ioctl and /proc only)."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue
            found.append(socket.inet_ntoa(reply[20:24]))
    try:
        for line in Path("/proc/net/if_inet6").read_text(encoding="ascii").splitlines():
            hex_addr = line.split()[0]
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(hex_addr))))
    except (OSError, ValueError, IndexError):
        pass
    return tuple(dict.fromkeys(found))


def this_host(agent_id: str) -> HostInfo:
    name = socket.gethostname()
    return HostInfo(
        name=name,
        hostname=name,
        id=machine_id() or agent_id,
        ip=local_ips(),
        os=read_os_release(),
        agent_id=agent_id,
    )
