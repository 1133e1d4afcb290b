"""Free TCP ports on loopback, so nothing in the harness or its tests uses a fixed port.

The kernel picks a free port when we bind port 0; we release it at once and hand the number out. Another
process could take it in between (a launcher that fails to bind should pick new ports and retry), but
within this process the same port is never handed out twice, which matters when one ensemble asks for
a dozen ports before any server has bound one.
"""

from __future__ import annotations

import socket
import threading

HOST = "127.0.0.1"

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that is free now and was not returned before by this process."""
    with _lock:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port on {host} that was not already handed out")


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct free ports."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [free_port(host) for _ in range(n)]
