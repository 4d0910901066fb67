"""A run's :class:`nstjax.Callbacks` that show it in the studio: loss points, pictures,
sweep members and the page's stop button.

The same object serves the studio's own runs (:mod:`nstjax.serve.jobs`) and a
command-line run watched with ``nstjax stylize --web`` (:meth:`Live.joined` adds it to the
command's own callbacks).
"""

from __future__ import annotations

import base64
import io
import math
import threading
import time

import numpy as np
from PIL import Image

import nstjax
from nstjax.io.image_writing import to_uint8
from nstjax.serve.events import Hub

FLUSH_S = 0.2              # progress points are sent at most this often (and at pictures)
LIVE_PICTURES = 100        # about this many pictures over a run, at least every 5 iterations


def png_data_url(image) -> str:
    """An RGB image in [0, 1] as a ``data:image/png;base64,...`` URL."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(np.asarray(image))).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_period(total: int) -> int:
    """Iterations between live pictures: :data:`LIVE_PICTURES` over the run, but at least
    one every 5 iterations (a chunk of iterations never crosses a picture, so this also
    caps how many iterations run between two host calls)."""
    return int(np.clip(math.ceil(total / LIVE_PICTURES), 1, 5))


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


class Live:
    """Publishes one run to a :class:`Hub`; ``stop_event`` is the page's stop request.

    Args:
      hub: where the pages listen.
      stop_event: set by ``POST /api/stop``.
      labels: for a sweep, each member's label (its settings).
    """

    def __init__(self, hub: Hub, stop_event: threading.Event, *, labels=()):
        self.hub, self.stop_event, self.labels = hub, stop_event, list(labels)
        self.t_start = time.perf_counter()
        self.first_picture_s = None
        self._losses: dict = {}
        self._pending: list = []
        self._flushed = time.perf_counter()

    def progress(self, i, loss) -> None:
        if np.ndim(i) == 0:
            self._losses[int(i)] = _finite(loss)
            return
        now = time.perf_counter()          # a sweep chunk: how far its members are
        if now - self._flushed >= FLUSH_S:
            self._flushed = now
            self.hub.publish("tick", {"iteration": int(np.max(i))}, iteration=int(np.max(i)))

    def terms(self, i, parts) -> None:
        i = int(i)
        self._pending.append([i, self._losses.pop(i, None), _finite(parts.get("content", 0)),
                              _finite(parts.get("style", 0)), _finite(parts.get("tv", 0))])
        self._flush(i, force=False)

    def snapshot(self, i, image) -> None:
        """A picture of a single solve, or a finished chunk of sweep members."""
        if np.ndim(i) == 0:
            if self.first_picture_s is None:
                self.first_picture_s = time.perf_counter() - self.t_start
            self._flush(int(i), force=True)
            src = png_data_url(image)
            self.hub.publish("image", {"iteration": int(i), "src": src,
                                       "first_picture_s": self.first_picture_s},
                             image=src, image_iteration=int(i))
            return
        for k, member in zip(np.asarray(i), image):
            k = int(k)
            self.hub.publish("member", {"index": k, "label": self._label(k),
                                        "src": png_data_url(member)})

    def _label(self, k: int) -> str:
        return self.labels[k] if k < len(self.labels) else f"member {k}"

    def _flush(self, i: int, *, force: bool) -> None:
        now = time.perf_counter()
        if self._pending and (force or now - self._flushed >= FLUSH_S):
            points, self._pending = self._pending, []
            self.hub.publish("progress", {"points": points}, iteration=i)
            self._flushed = now

    def finish(self) -> None:
        """Send the points not yet sent."""
        if self._pending:
            self._flush(self._pending[-1][0], force=True)

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def callbacks(self, total: int) -> nstjax.Callbacks:
        """The callbacks of a run of ``total`` iterations."""
        return nstjax.Callbacks(progress=self.progress, snapshot=self.snapshot,
                                snapshot_every=picture_period(total),
                                should_stop=self.should_stop, terms=self.terms)

    def joined(self, theirs: nstjax.Callbacks | None, total: int) -> nstjax.Callbacks:
        """``theirs`` (a command's own callbacks) and this view's, both called; the run stops
        when either asks.  Pictures come at the command's own period when it has one."""
        mine = self.callbacks(total)
        if theirs is None:
            return mine

        def both(a, b):
            if a is None or b is None:
                return a or b
            return lambda *args: (a(*args), b(*args))[-1]

        stop = (lambda: bool(theirs.should_stop()) or self.should_stop()) \
            if theirs.should_stop else self.should_stop
        every = theirs.every or mine.every
        return nstjax.Callbacks(progress=both(theirs.progress, mine.progress),
                                snapshot=both(theirs.snapshot, mine.snapshot),
                                snapshot_every=every, should_stop=stop,
                                terms=both(theirs.terms, mine.terms))
