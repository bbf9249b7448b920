"""Binding the listening socket, with errors a person can act on."""

from __future__ import annotations

import errno
import logging
import socket

from corescale.worker.errors import BootError

log = logging.getLogger(__name__)


def bind_listener(
    host: str, port: int, backlog: int, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A listening TCP socket on HOST:PORT; BootError naming the port if that fails.

    `listen=False` only reserves the port: with SO_REUSEPORT a listening
    socket in the master would take its share of connections and never
    accept them.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BootError(f"cannot bind {host}:{port}: the host does not resolve ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BootError(_explain(host, port, exc)) from None
    sock.setblocking(False)
    return sock


def _explain(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (EADDRINUSE): another process is "
            f"listening on it. Stop that process (`ss -ltnp 'sport = :{port}'` shows which "
            "one) or choose another port with --bind HOST:PORT or CORESCALE_BIND."
        )
    if exc.errno == errno.EACCES:
        return (
            f"no permission to bind port {port} on {host} (EACCES): ports below 1024 need "
            "root or CAP_NET_BIND_SERVICE; use a port from 1024 up, e.g. --bind 0.0.0.0:8080."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot bind {host}:{port} (EADDRNOTAVAIL): {host} is not an address of this "
            "machine; use 0.0.0.0 for all addresses."
        )
    return f"cannot bind {host}:{port}: {exc.strerror or exc}"
