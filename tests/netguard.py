"""Refuse any connection or name lookup that would leave 127.0.0.0/8.

A refusal raises ``ConnectionRefusedError`` (so the caller fails the way a closed network
would make it fail) *and* is recorded, because libraries such as azure-identity catch
connection errors and carry on: the test suite fails a test whose record is not empty.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import traceback

_lock = threading.Lock()
_violations: list[str] = []
_log_path: str | None = None
_installed = False
_ALLOWED_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
# Package-registry hosts a child process may reach (only the README test's ``pip install``
# sets this), and the addresses they resolved to.
_registry_hosts: set[str] = set()
_registry_addresses: set[str] = set()


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    name = host.strip("[]").lower()
    if name in _ALLOWED_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _refuse(what: str) -> None:
    where = "".join(traceback.format_stack(limit=8)[:-2])
    entry = f"{what} (pid {os.getpid()})\n{where}"
    with _lock:
        _violations.append(entry)
        if _log_path:
            with open(_log_path, "a", encoding="utf-8") as fh:
                fh.write(entry + "\n---\n")
    raise ConnectionRefusedError(f"network guard: {what} is outside 127.0.0.0/8")


def install(log_path: str | None = None) -> None:
    """Patch socket connect and name resolution in this process (idempotent)."""
    global _installed, _log_path
    _log_path = log_path
    _registry_hosts.update(h.lower() for h in os.environ.get("AMLFLOW_NETGUARD_REGISTRIES", "").split(",") if h)
    if _installed:
        return
    _installed = True
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not _is_loopback(address[0]) and address[0] not in _registry_addresses:
                _refuse(f"connect to {address[0]}:{address[1]}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not _is_loopback(address[0]) and address[0] not in _registry_addresses:
                _refuse(f"connect to {address[0]}:{address[1]}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        name = host.decode() if isinstance(host, bytes) else host
        # An address literal needs no lookup (connect checks it); a name other than localhost
        # would send a DNS query off the machine.
        if isinstance(name, str) and name.lower() in _registry_hosts:
            found = real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]
            _registry_addresses.update(str(info[4][0]) for info in found)
            return found
        if isinstance(name, str) and not _is_address(name) and not _is_loopback(name):
            _refuse(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def take_violations() -> list[str]:
    """Return and forget the refusals recorded in this process."""
    with _lock:
        taken = list(_violations)
        _violations.clear()
    return taken
