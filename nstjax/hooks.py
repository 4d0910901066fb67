"""Host callbacks of a compiled solve: progress, snapshots and a stop request.

The whole solve is one compiled ``while_loop``; the host hears from it, and can stop it,
only through callbacks that XLA calls between iterations.  A compiled program cannot hold
Python functions that change from call to call without compiling again, so the program
holds one fixed function of a traced *run id* and the callbacks of a run are looked up by
that id while the run lasts (:func:`attached`).  Two runs at once (threads) have two ids.

* :class:`Callbacks` is what a caller passes in: ``progress(i, loss)`` after every
  iteration, ``snapshot(i, image)`` every ``snapshot_every`` iterations, ``should_stop()``
  consulted after every iteration (a ``True`` ends the solve with status ``INTERRUPTED``,
  keeping the current image: this is how Ctrl-C stops a run within one iteration).
* :func:`make_on_step` builds the traced ``on_step(i, value, x) -> stop`` hook that
  :func:`nstjax.minimize` calls.  Under ``vmap`` (sweeps) it makes one host call per
  iteration for the whole batch (``pure_callback`` with ``vmap_method="broadcast_all"``);
  ``progress`` then receives the batch's arrays.  Snapshots, which write files, are an
  ordered ``io_callback`` and exist only for single runs.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback


class Callbacks(NamedTuple):
    """Host functions a solve calls (all optional).

    Attributes:
      progress: ``(iteration, loss)`` after every iteration (arrays of the batch in sweeps).
      snapshot: ``(iteration, image)`` every ``snapshot_every`` iterations (single runs).
      snapshot_every: period of ``snapshot`` (0: never).
      should_stop: ``() -> bool``, consulted after every iteration.
    """

    progress: Callable | None = None
    snapshot: Callable | None = None
    snapshot_every: int = 0
    should_stop: Callable[[], bool] | None = None

    @property
    def any(self) -> bool:
        return self.progress is not None or self.should_stop is not None or self.every > 0

    @property
    def every(self) -> int:
        return int(self.snapshot_every) if self.snapshot is not None else 0


_ACTIVE: dict[int, Callbacks] = {}
_LOCK = threading.Lock()
_IDS = itertools.count(1)


@contextlib.contextmanager
def attached(callbacks: Callbacks):
    """Make ``callbacks`` reachable from compiled code while the block runs; yields the id."""
    with _LOCK:
        run_id = next(_IDS) % 2**31
        _ACTIVE[run_id] = callbacks
    try:
        yield np.int32(run_id)
    finally:
        with _LOCK:
            _ACTIVE.pop(run_id, None)


def _step_host(run_id, iteration, value):
    callbacks = _ACTIVE.get(int(np.ravel(run_id)[0]))
    stop = False
    if callbacks is not None:
        if callbacks.progress is not None:
            it, val = np.asarray(iteration), np.asarray(value)
            if it.ndim == 0:
                callbacks.progress(int(it), float(val))
            else:
                callbacks.progress(it, val)
        if callbacks.should_stop is not None:
            stop = bool(callbacks.should_stop())
    return np.full(np.shape(iteration), stop, np.bool_)


def _snapshot_host(run_id, iteration, x):
    callbacks = _ACTIVE.get(int(run_id))
    if callbacks is not None and callbacks.snapshot is not None:
        callbacks.snapshot(int(iteration), np.asarray(x))


def make_on_step(run_id, *, snapshot_every: int = 0) -> Callable:
    """The traced hook ``on_step(i, value, x) -> bool[]`` for :func:`nstjax.minimize`.

    Args:
      run_id: ``i32[]`` from :func:`attached` (traced: a new run does not recompile).
      snapshot_every: static period of snapshots (0: none; single runs only).
    """
    def on_step(iteration, value, x):
        stop = jax.pure_callback(_step_host, jax.ShapeDtypeStruct(jnp.shape(iteration), jnp.bool_),
                                 run_id, iteration, value, vmap_method="broadcast_all")
        if snapshot_every > 0:
            jax.lax.cond(iteration % snapshot_every == 0,
                         lambda: io_callback(_snapshot_host, None, run_id, iteration, x,
                                             ordered=True),
                         lambda: None)
        return stop

    return on_step
