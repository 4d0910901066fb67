"""Host callbacks of a solve: progress, snapshots and a stop request.

They are called by :func:`nstjax.run.transfer.drive` between compiled chunks of iterations,
never from inside a compiled program: JAX's persistent compilation cache does not keep a
program that calls back to the host, and a callback that changes from run to run would
otherwise mean compiling again.
"""

from __future__ import annotations

from typing import Callable, NamedTuple


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
