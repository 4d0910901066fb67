"""``nstjax serve``: a local web studio that shows the picture as it forms.

Starts the studio (:mod:`nstjax.serve`) and prints its address; it listens on 127.0.0.1
only unless ``--host`` says otherwise.  Typed paths may point into the ``--images``
folders; results and uploads go to ``--out``.  ``nstjax stylize --web`` opens the same
live view for a command-line run (:func:`web_view`).
"""

from __future__ import annotations

import atexit
import math
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from nstjax.cli import common
from nstjax.cli.common import UsageError
from nstjax.serve.app import LOCAL_HOSTS, create_app
from nstjax.serve.events import Hub
from nstjax.serve.live import Live
from nstjax.serve.server import address, bind, is_loopback, make_server, start_in_thread
from nstjax.serve.uploads import MAX_UPLOAD_BYTES, make_folders

DEFAULT_PORT = 8765


def add_arguments(p) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1: this machine only; another address lets others on the network "
                   "in, with a warning)")
    g.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    g.add_argument("--images", action="append", help="a folder the page may read images "
                   "from by path (repeatable; default: the current folder)")
    g.add_argument("--out", default="nstjax-studio", help="folder of results and uploads "
                   "(default ./nstjax-studio)")
    g.add_argument("--weights", help="VGG19 weights, vgg19.h5 (default: $NSTJAX_WEIGHTS or "
                   "weights/vgg19.h5)")
    g.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_BYTES / 2**20,
                   help="largest upload per image, MB (default %(default)g)")
    g.add_argument("--max-size", type=int, default=1024,
                   help="largest long edge a run may ask for (default %(default)s)")


def _listen(host: str, port: int):
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {port}")
    try:
        return bind(host, port)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def trusted_hosts(host: str) -> list[str]:
    if is_loopback(host):       # and the address itself (127.0.0.2 is loopback too)
        return list(dict.fromkeys([*LOCAL_HOSTS, host, f"[{host}]" if ":" in host else host]))
    print(f"warning: listening on {host}: anyone who can reach this machine on the network "
          "can use the studio (read images in --images, write in --out); there is no "
          "password", file=sys.stderr)
    return ["*"]


def run(args) -> int:
    """The body of ``nstjax serve``; returns the exit code."""
    if not (math.isfinite(args.max_upload_mb) and args.max_upload_mb > 0):
        raise UsageError(f"--max-upload-mb must be a number above 0, not {args.max_upload_mb}")
    if args.max_size < common.MIN_SIZE:
        raise UsageError(f"--max-size must be at least {common.MIN_SIZE}, not {args.max_size}")
    images = [Path(p) for p in args.images or ["."]]
    for folder in images:
        if not folder.is_dir():
            raise UsageError(f"--images {folder}: no such folder")
    try:
        folders = make_folders(images, args.out)
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot create it ({e.strerror or e})") from None
    sock = _listen(args.host, args.port)
    hosts = trusted_hosts(args.host)
    common.enable_compilation_cache()
    app = create_app(folders, load_vgg=lambda: common.load_vgg(args.weights), hosts=hosts,
                     max_upload=int(args.max_upload_mb * 2**20), max_size=args.max_size)
    print(f"nstjax studio at {address(sock)} (results in {folders.out}; Ctrl-C to quit)",
          file=sys.stderr)
    make_server(app).run(sockets=[sock])
    return 0


def web_view(callbacks, total: int, *, what: str = "stylize"):
    """A live view of a command-line run: the studio's page, in a thread, watching this run
    (its stop button stops the run as Ctrl-C does).  Returns ``(callbacks, done)``: the run's
    callbacks joined with the view's, and ``done(message, failed=False)`` to call when the
    solve ends.  The page answers until the process exits; then the server stops and its
    temporary folder goes (``done.close()`` does it sooner)."""
    hub, stop = Hub(), threading.Event()
    live = Live(hub, stop)
    try:
        sock = bind("127.0.0.1", DEFAULT_PORT)
    except OSError:
        sock = bind("127.0.0.1", 0)
    temp = tempfile.mkdtemp(prefix="nstjax-web-")
    server, thread = start_in_thread(create_app(make_folders([], temp), hub=hub,
                                                stop_event=stop), sock)

    def close() -> None:
        atexit.unregister(close)
        server.should_exit = True
        thread.join(10)
        sock.close()
        shutil.rmtree(temp, ignore_errors=True)

    atexit.register(close)
    hub.reset(status="running", kind="run", id=what, total=total,
              message="a command-line run (the first run of a size compiles first)")
    print(f"live view at {address(sock)}", file=sys.stderr)

    def done(message: str, failed: bool = False) -> None:
        live.finish()
        status = "failed" if failed else "stopped" if stop.is_set() else "done"
        hub.publish("status", {"status": status, "message": message}, status=status,
                    message=message)

    done.close = close
    return live.joined(callbacks, total), done
