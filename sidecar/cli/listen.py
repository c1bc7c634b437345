"""The listening socket of ``statelock serve``: bound before anything else opens, errors in one line."""

from __future__ import annotations

import os
import socket

from sidecar.config import Config
from sidecar.errors import StartupError


def bind_socket(cfg: Config, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """The socket on ``cfg.listen``, bound (and listening unless ``listen`` is false), non-blocking.

    ``reuse_port``: SO_REUSEPORT, so the workers of one supervisor bind the same port.
    Raises StartupError with the one line an operator reads (a busy port, a port
    that needs privileges).
    """
    family = socket.AF_INET6 if ":" in cfg.listen_host else socket.AF_INET
    try:
        if listen:
            sock = socket.create_server((cfg.listen_host, cfg.listen_port), family=family, backlog=1024,
                                        reuse_port=reuse_port)
        else:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((cfg.listen_host, cfg.listen_port))
            except BaseException:
                sock.close()
                raise
    except OSError as exc:
        hint = ""
        if exc.errno == 98:
            hint = " (another Statelock or nova-api? change `listen` or set STATELOCK_LISTEN)"
        elif exc.errno == 13:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"cannot listen on {cfg.listen}: {why}{hint}") from exc
    sock.setblocking(False)
    return sock
