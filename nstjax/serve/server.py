"""Serving the studio with uvicorn: in the foreground (``nstjax serve``) or in a thread
beside a command-line run (``nstjax stylize --web``), on a socket bound first so that its
address (port 0: any free port) is known and printed before the first request.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import uvicorn

STARTUP_S = 10.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (nothing else on the network reaches it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``OSError`` when that is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """The URL a browser on this machine opens for ``sock``."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class StudioServer(uvicorn.Server):
    """uvicorn's server, which first ends the pages' event streams when it shuts down (they
    would otherwise hold it up)."""

    async def shutdown(self, sockets=None):
        hub = getattr(getattr(self.config.app, "state", None), "hub", None)
        if hub is not None:
            hub.close()
        await super().shutdown(sockets=sockets)


def make_server(app) -> uvicorn.Server:
    """A quiet uvicorn server for ``app`` (warnings only, through the ``logging`` the
    process has: uvicorn's own set-up would keep today's ``sys.stderr``)."""
    return StudioServer(uvicorn.Config(app, log_level="warning", access_log=False,
                                       log_config=None, timeout_graceful_shutdown=5,
                                       lifespan="on"))


def start_in_thread(app, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve ``app`` on ``sock`` in a daemon thread, returning once it answers (or after
    ``STARTUP_S``); ``server.should_exit = True`` ends it."""
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="nstjax-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, thread
