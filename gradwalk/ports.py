"""Loopback ports: whether a service answers on one, and one that is free now."""

from __future__ import annotations

import contextlib
import socket


def port_answers(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now, for services a test or benchmark starts of its own
    (another process could take it meanwhile, so start the service right away)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
