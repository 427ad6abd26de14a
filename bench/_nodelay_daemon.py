"""`lockbridge` with TCP_NODELAY on its MQTT socket: a what-if for bench.command_overhead.

The daemon as shipped leaves aiomqtt's (and paho's) defaults, i.e. Nagle's algorithm on. This
wrapper patches that in its own process only; it changes nothing in the repository.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from typing import Any

import aiomqtt.client

_original = aiomqtt.client._set_client_socket_defaults
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _with_nodelay(client_socket: Any, socket_options: Iterable[Any]) -> None:
    _original(client_socket, [*socket_options, NODELAY])


aiomqtt.client._set_client_socket_defaults = _with_nodelay

if __name__ == "__main__":
    from bridge.cli import main

    sys.exit(main())
