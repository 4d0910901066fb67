"""Host callbacks of a solve: progress, snapshots and a stop request.

They are called by :func:`nstjax.run.transfer.drive` between compiled chunks of iterations,
never from inside a compiled program: JAX's persistent compilation cache does not keep a
program that calls back to the host, and a callback that changes from run to run would
otherwise mean compiling again.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Callbacks(NamedTuple):
    """Host functions a solve calls (all optional).

    Attributes:
      progress: ``(iteration, loss)`` for every iteration of a single solve; for a sweep
        ``(iterations, losses)``, arrays over the members, once per chunk.
      snapshot: ``(iteration, image)`` every ``snapshot_every`` iterations (single solves);
        for a sweep ``(member indices, images)``, once per finished chunk of members.
      snapshot_every: period of ``snapshot`` (0: never; a sweep's ignores it).
      should_stop: ``() -> bool``, consulted after every chunk (a fraction of a second);
        ``True`` ends the solve with status ``INTERRUPTED``, keeping the current image.
      terms: ``(iteration, {"content", "style", "tv"})``, the weighted parts of the loss
        after every iteration of a single solve (a live loss plot's lines).
    """

    progress: Callable | None = None
    snapshot: Callable | None = None
    snapshot_every: int = 0
    should_stop: Callable[[], bool] | None = None
    terms: Callable | None = None

    @property
    def every(self) -> int:
        return int(self.snapshot_every) if self.snapshot is not None else 0


def offset(callbacks: Callbacks | None, done: int, *, snapshots: bool = True,
           terms: bool = True) -> Callbacks | None:
    """``callbacks`` whose iteration numbers continue after ``done`` earlier iterations
    (a ladder's rungs, a tiled run's tiles, a video's frames), the stop request as it is;
    ``snapshots=False``/``terms=False`` drop those (a stage whose images or terms are not
    the run's).  A batch's iterations stay an array, one per member.  None stays None."""
    if callbacks is None:
        return None

    def shift(fn):
        return fn and (lambda i, v: fn(done + np.asarray(i) if np.ndim(i) else done + i, v))

    return callbacks._replace(progress=shift(callbacks.progress),
                              snapshot=shift(callbacks.snapshot) if snapshots else None,
                              terms=shift(callbacks.terms) if terms else None)
