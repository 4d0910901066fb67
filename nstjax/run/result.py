"""The one result of every single-image entry point, and how a staged run joins its stages.

:func:`nstjax.stylize`, :func:`nstjax.stylize_sharded`, :func:`nstjax.stylize_multiscale`
and :func:`nstjax.stylize_tiled` all return a :class:`TransferResult`.  A run made of
several solves (the rungs of a size ladder; a coarse solve and its tiles) keeps each solve
as a :class:`Stage` and reports their histories end to end.  The batched drivers
(:func:`nstjax.sweep`, :func:`nstjax.invert`) return the same fields with a leading
member axis in their own types, which add what is theirs (settings, probes).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from nstjax.objective.config import LossWeights
from nstjax.solve.minimize import Status, status_names


class TransferResult(NamedTuple):
    """Outcome of a style transfer.

    Attributes:
      image: ``f32[H, W, 3]`` RGB in [0, 1].
      loss: ``f32[]`` objective at ``image`` (a staged run: the last stage's, at its size;
        a tiled run's last tile is solved against the whole image's Gram matrices, so for
        Gram methods this is the whole image's objective).
      history: ``f32[T]`` loss per iteration: a single solve's ``T`` is ``max_iter`` (NaN
        after the last iteration); a staged run's, its stages' iterations end to end (each
        at its own size, so comparable only within a stage).
      n_iter: ``i32[]`` iterations run (over all stages).
      status: ``i32[]`` an :class:`nstjax.Status` (a staged run: the last stage's, or
        ``INTERRUPTED`` when a stop request ended it).
      terms: ``{"content", "style", "tv"}`` weighted parts of ``loss``.
      weights: the :class:`LossWeights` used (after automatic scaling; a staged run: the
        last stage's).
      term_history: ``{"content", "style", "tv"}``, each shaped like ``history``: the parts
        after each iteration, from the evaluations the solve made anyway.
      stages: the :class:`Stage` of each solve of a staged run (``()`` for one solve).
      opt_state: the optimiser's state at the end, when asked for (``keep_opt_state``),
        to warm-start another solve; else None.
    """

    image: jax.Array
    loss: jax.Array
    history: jax.Array
    n_iter: jax.Array
    status: jax.Array
    terms: dict
    weights: LossWeights
    term_history: dict = {}
    stages: tuple = ()
    opt_state: Any = None

    @property
    def status_name(self) -> str:
        """Why the solve stopped, by name: ``"MAX_ITER"``, ``"CONVERGED"``, ..."""
        return status_names(self.status)


class Stage(NamedTuple):
    """One solve of a staged run.

    Attributes:
      name: what it solved, e.g. ``"256×192"``, ``"coarse 512×341"``, ``"tile 3/35"``.
      result: its :class:`TransferResult` at its own size (a tile's: its whole window).
      window: ``(y0, x0, h, w)``, where ``result.image`` lies in the full image, or ``()``
        when it covers the whole image (at its own size).
      core: ``(y0, x0, h, w)``, the part of the full image it wrote, or ``()`` likewise.
    """

    name: str
    result: TransferResult
    window: tuple = ()
    core: tuple = ()


def staged_result(stages: Sequence[Stage], image, *, interrupted: bool = False
                  ) -> TransferResult:
    """The :class:`TransferResult` of ``stages`` run in order, ending at ``image``: the last
    stage's loss, terms and weights, every stage's history end to end, the iterations
    summed, and status ``INTERRUPTED`` when ``interrupted`` (else the last stage's)."""
    if not stages:
        raise ValueError("a staged run needs at least one stage")
    results = [s.result for s in stages]
    last = results[-1]
    counts = [int(r.n_iter) for r in results]

    def joined(histories):
        return jnp.concatenate([jnp.asarray(h)[:n] for h, n in zip(histories, counts)])

    term_history = {k: joined([r.term_history[k] for r in results])
                    for k in last.term_history}
    status = jnp.int32(Status.INTERRUPTED) if interrupted else last.status
    return TransferResult(image=image, loss=last.loss,
                          history=joined([r.history for r in results]),
                          n_iter=jnp.int32(sum(counts)), status=status, terms=last.terms,
                          weights=last.weights, term_history=term_history,
                          stages=tuple(stages), opt_state=last.opt_state)
