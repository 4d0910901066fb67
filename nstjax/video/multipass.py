"""The multi-pass algorithm: every frame at once, as one ``vmap``-ped, chunked program.

Ruder, Dosovitskiy and Brox (IJCV 2018, §4.5) sweep over the clip several times, alternating
forward and backward; in each pass a frame starts from its last result blended with the
neighbour before it in the pass's direction, warped into it where the flow is reliable
(:func:`nstjax.video.temporal.blend_neighbour`), and is solved for a few iterations with the
temporal loss towards that warped neighbour.  Here every frame of a pass reads its neighbour
from the *last* pass (a Jacobi rather than a Gauss-Seidel sweep), so all frames of a pass
are independent: one compiled program ``vmap``-ped over a chunk of frames, chunk after
chunk.  Pass 0 solves every frame alone.  A checkpoint after every chunk holds the last and
the current pass, so a stopped run resumes exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_writing import to_uint8
from nstjax.model.vgg import extract_features
from nstjax.objective.config import Objective
from nstjax.objective.temporal import Temporal
from nstjax.objective.terms import Targets
from nstjax.run import color
from nstjax.run.hooks import Callbacks
from nstjax.run.memory import available_bytes, estimate_transfer_bytes
from nstjax.run.transfer import (
    Problem,
    Program,
    drive,
    transfer_advance,
    transfer_finish,
    transfer_init,
)
from nstjax.solve.minimize import Status
from nstjax.video.driver import (
    Clip,
    finish,
    offset_callbacks,
    start_image,
)
from nstjax.video.temporal import blend_neighbour
from nstjax.video.warp import warp_frames

FRAME_AXES = Problem(vgg=None, targets=Targets(content=0, style=None, style_masks=None,
                                               content_mask=None, palette=None),
                     weights=0, key=None, frozen=None, temporal=Temporal(0, 0, None))
MEMORY_FRACTION = 0.8
DEFAULT_BLEND = 0.5


def frames_that_fit(height: int, width: int, objective: Objective, *, history_size: int = 10,
                    available: int | None = None) -> int:
    """How many frames one vmapped solve holds within :data:`MEMORY_FRACTION` of the
    memory available (closed-form estimate, :func:`nstjax.run.memory.estimate_transfer_bytes`);
    0 when not even one fits."""
    available = available_bytes() if available is None else available
    budget = MEMORY_FRACTION * available
    one = estimate_transfer_bytes(height, width, layers=objective.layers,
                                  history_size=history_size, remat=objective.remat != "none")
    two = estimate_transfer_bytes(height, width, layers=objective.layers,
                                  history_size=history_size, remat=objective.remat != "none",
                                  members=2)
    per_frame, fixed = two - one, 2 * one - two
    return max(int((budget - fixed) // per_frame), 0)


@functools.lru_cache(maxsize=8)
def programs(objective: Objective):
    """``init``, ``advance``, ``finish`` of :mod:`nstjax.run.transfer`, ``vmap``-ped over
    frames (:data:`FRAME_AXES`) and compiled."""
    init = jax.vmap(functools.partial(transfer_init, objective=objective),
                    in_axes=(0, FRAME_AXES, None), out_axes=(0, FRAME_AXES))
    advance = jax.vmap(functools.partial(transfer_advance, objective=objective),
                       in_axes=(0, FRAME_AXES, None, None))
    finish_ = jax.vmap(functools.partial(transfer_finish, objective=objective,
                                         branchless=True),
                       in_axes=(0, FRAME_AXES, None))
    return jax.jit(init), jax.jit(advance), jax.jit(finish_)


def neighbours(n: int, direction: int):
    """``(neighbour index, flow (pairs field, index))`` per frame for a pass in
    ``direction`` (+1: the frame before; −1: the frame after); the end frame has none."""
    idx = np.arange(n)
    if direction > 0:
        return np.maximum(idx - 1, 0), ("back", "back_weights", idx)
    return np.minimum(idx + 1, n - 1), ("fwd", "fwd_weights", np.minimum(idx + 1, n - 1))


@jax.jit
def pass_inputs(last, neighbour, flow, weight, blend, strength):
    """``(start, Temporal)`` of a chunk's frames in a pass after the first: each frame's
    last result blended with its warped neighbour, and the temporal loss towards that
    warped neighbour.  Compiled once per chunk shape."""
    x0 = jax.vmap(blend_neighbour, in_axes=(0, 0, 0, 0, None))(last, neighbour, flow,
                                                              weight, blend)
    return x0, Temporal(warp_frames(neighbour, flow)[:, None], weight[:, None], strength)


@functools.partial(jax.jit, static_argnames=("layers", "pooling"))
def batched_features(vgg, frames, *, layers, pooling):
    """The content targets of a chunk of frames."""
    return jax.vmap(lambda c: extract_features(vgg, c, layers, pooling=pooling))(frames)


def _chunk_inputs(clip: Clip, previous, idx, p: int, blend):
    """``(x0, problem)`` of the frames ``idx`` in pass ``p``."""
    o = clip.objective
    content = batched_features(clip.vgg, clip.run_content[idx], layers=o.content_layers,
                               pooling=o.pooling)
    targets = clip.targets._replace(content=content)
    weights = jax.tree.map(lambda w: np.broadcast_to(w, (len(idx),) + np.shape(w)),
                           clip.weights)
    n = len(clip.content)
    if p == 0:
        x0 = jnp.stack([start_image(clip, int(i)) for i in idx])
        temporal = Temporal(np.zeros((len(idx), 1) + x0.shape[1:], np.float32),
                            np.zeros((len(idx), 1) + x0.shape[1:3] + (1,), np.float32),
                            np.float32(0.0))
    else:
        nb, (flow_name, weight_name, at) = neighbours(n, +1 if p % 2 else -1)
        pairs = clip.flows[1]
        flow = getattr(pairs, flow_name)[at[idx]]
        c = getattr(pairs, weight_name)[at[idx]] * (nb[idx] != idx)[:, None, None, None]
        x0, temporal = pass_inputs(previous[idx], previous[nb[idx]], flow, c,
                                   np.float32(blend), np.float32(clip.strength))
    return x0, Problem(clip.vgg, targets, weights, clip.key, temporal=temporal)


def run_multipass(clip: Clip, *, passes: int, pass_iters: int, chunk: int,
                  blend: float = DEFAULT_BLEND, callbacks: Callbacks | None = None,
                  on_checkpoint: Callable | None = None, checkpoint: dict | None = None):
    """The multi-pass algorithm over ``clip`` (:mod:`nstjax.video.multipass`).

    Args:
      clip: from :func:`nstjax.video.driver.prepare`.
      passes: number of passes (the first solves every frame alone).
      pass_iters: iterations per frame and pass.
      chunk: frames per vmapped program (the last chunk is padded to it, so one program
        serves every chunk).
      blend: ``δ`` of the blending (traced).
      callbacks: progress (iterations over all frames and passes) and stop request.
      on_checkpoint: ``(checkpoint dict)`` after every finished chunk.
      checkpoint: a stopped run's last checkpoint: continue from it.

    Returns:
      A :class:`~nstjax.video.driver.VideoResult` (``passes``: passes completed).
    """
    n = len(clip.content)
    if passes < 1 or pass_iters < 1 or chunk < 1:
        raise ValueError("passes, iterations per pass and chunk must be at least 1")
    state = checkpoint or {"pass": 0, "next": 0, "previous": np.zeros(clip.content.shape,
                           np.float32), "current": np.zeros(clip.content.shape, np.float32),
                           "n_iter": np.zeros(n, np.int32), "losses": np.full(n, np.nan),
                           "seconds": np.zeros(n), "terms": {}}
    solver = dataclasses.replace(clip.solver, max_iter=pass_iters)
    init, advance, finish_ = programs(clip.objective)
    status = Status.MAX_ITER
    while state["pass"] < passes:
        p, a = state["pass"], state["next"]
        if callbacks is not None and callbacks.should_stop and callbacks.should_stop():
            status = Status.INTERRUPTED
            break
        idx = np.minimum(np.arange(a, a + chunk), n - 1)
        started = time.perf_counter()
        x0, problem = _chunk_inputs(clip, state["previous"], idx, p, blend)
        program = Program(init=lambda: init(x0, problem, solver),
                          advance=lambda s, q, u: advance(s, q, solver, u),
                          finish=lambda s, q: finish_(s, q, solver))
        cb = offset_callbacks(callbacks, (p * n + a) * pass_iters)
        cb = cb._replace(progress=None if cb.progress is None else
                         (lambda i, v, f=cb.progress, k=min(chunk, n - a):
                          f(np.full(np.shape(v), np.max(i) * k), v)))
        result, terms, _ = drive(program, pass_iters, cb)
        if np.any(np.asarray(result.status) == Status.INTERRUPTED):
            status = Status.INTERRUPTED
            break
        real = slice(0, min(chunk, n - a))
        frames = idx[real]
        state["current"][frames] = np.asarray(result.x)[real]
        state["n_iter"][frames] += np.asarray(result.n_iter)[real]
        state["losses"][frames] = np.asarray(result.value)[real]
        for k, v in terms.items():
            state["terms"].setdefault(k, np.full(n, np.nan))[frames] = np.asarray(v)[real]
        state["seconds"][frames] += (time.perf_counter() - started) / len(frames)
        if np.any(np.asarray(result.status)[real] == Status.NON_FINITE):
            status = Status.NON_FINITE
        state["next"] = a + len(frames)
        if state["next"] >= n:
            state.update({"pass": p + 1, "next": 0, "previous": state["current"].copy()})
        if on_checkpoint is not None:
            on_checkpoint(state)
    done = n if state["pass"] >= 1 else 0
    out = np.zeros(clip.content.shape, np.uint8)
    if done:
        final = jax.vmap(lambda x, c: color.finish_output(x, c, preserve=clip.preserve))(
            jnp.asarray(state["previous"]), jnp.asarray(clip.content))
        out = to_uint8(final)
    return finish(clip, out, done=done, passes=state["pass"], losses=state["losses"],
                  terms=state["terms"], n_iter=state["n_iter"], seconds=state["seconds"],
                  status=status)
