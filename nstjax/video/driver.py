"""Video style transfer: independent frames, the sequential algorithm, and what every mode
shares (the clip's targets, colour handling, the result).

``sequential`` (Ruder et al. 2016 §3.3): frame ``i`` starts from the previous output warped
into it (where the flow is reliable; its own start elsewhere) and is solved with the short-term temporal loss (eq. 7), or the long-term loss over
several earlier frames (eq. 8).  ``independent``: every frame alone (the flickering
baseline).  ``multipass`` (IJCV 2018 §4.5) is :mod:`nstjax.video.multipass`.

Each finished frame is handed to ``on_frame`` as 8-bit RGB and the chain continues from that
8-bit frame, so a run resumed from saved frames (``done``) makes the same frames as one that
was never stopped.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_writing import to_uint8
from nstjax.model.vgg import extract_features
from nstjax.objective.config import Objective, loss_weights
from nstjax.objective.terms import compute_targets
from nstjax.run import color
from nstjax.run.hooks import Callbacks, offset
from nstjax.run.transfer import Problem, as_image_list, initial_image, solve
from nstjax.solve.minimize import Status
from nstjax.solve.solver import Solver
from nstjax.video.flow import FlowPairs
from nstjax.video.temporal import frame_errors, temporal_targets

frame_errors_jit = jax.jit(frame_errors)
MODES = ("independent", "sequential", "multipass")
DEFAULT_TEMPORAL_WEIGHT = 3e8


class VideoResult(NamedTuple):
    """Outcome of a video style transfer.

    Attributes:
      frames: ``uint8[N, H, W, 3]`` RGB (frames not finished are zero).
      done: frames finished (``N`` unless interrupted; multi-pass: ``N`` once a pass
        completed).
      passes: passes completed (1 for the single-pass modes once every frame is done).
      losses: ``f32[N]`` each frame's final objective (NaN where not finished).
      terms: ``{"content", "style", "tv", "temporal"}``, each ``f32[N]``.
      n_iter: ``i32[N]`` iterations per frame (over all passes).
      seconds: ``f32[N]`` wall time per frame (multi-pass: its share of each chunk).
      status: an :class:`nstjax.Status`: ``INTERRUPTED`` after a stop request,
        ``NON_FINITE`` if a frame's loss turned non-finite, else ``MAX_ITER``.
      frame_errors: ``f32[N − 1]`` flicker between consecutive frames
        (:func:`nstjax.video.temporal.frame_errors`; NaN until both are finished).
      temporal_error: their mean (NaN unless every frame is finished).
    """

    frames: np.ndarray
    done: int
    passes: int
    losses: np.ndarray
    terms: dict
    n_iter: np.ndarray
    seconds: np.ndarray
    status: int
    frame_errors: np.ndarray
    temporal_error: float


class Clip(NamedTuple):
    """What every mode reads, prepared once by :func:`prepare`.

    Attributes:
      vgg: the network's parameters.
      content: ``f32[N, H, W, 3]`` the content frames, RGB.
      run_content: ``f32[N, H, W, 3]`` the images solved against (after colour control).
      targets: frame 0's :class:`~nstjax.objective.terms.Targets` (the style parts are
        every frame's; the content part is replaced per frame).
      weights: the traced :class:`~nstjax.objective.config.LossWeights`.
      key, init_key: PRNG keys of the losses and of a noise start.
      styles: the style images solved against (after colour control).
      flows: ``{gap: FlowPairs}``.
      objective, solver: as for :func:`nstjax.stylize`.
      strength: the temporal weight ``γ``.
      init: a start's name or an ``f32[H, W, 3]`` image.
      preserve: the colour control (``None``, ``"luminance"``, ``"histogram"``).
    """

    vgg: object
    content: np.ndarray
    run_content: np.ndarray
    targets: object
    weights: object
    key: jax.Array
    init_key: jax.Array
    styles: list
    flows: dict
    objective: Objective
    solver: Solver
    strength: float
    init: object
    preserve: str | None


@functools.partial(jax.jit, static_argnames=("layers", "pooling"))
def content_features(vgg, image, *, layers, pooling):
    """The content targets of one frame (its VGG features at the content layers)."""
    return extract_features(vgg, image, layers, pooling=pooling)


def frame_problem(clip: Clip, i: int, temporal) -> Problem:
    """The :class:`~nstjax.run.transfer.Problem` of frame ``i``."""
    o = clip.objective
    targets = clip.targets._replace(content=content_features(
        clip.vgg, clip.run_content[i], layers=o.content_layers, pooling=o.pooling))
    return Problem(clip.vgg, targets, clip.weights, clip.key, temporal=temporal)


def to_run_space(frame_u8, preserve):
    """An 8-bit output frame as the image the solve works on (its luminance image under
    ``"luminance"``), ``f32`` on the host."""
    x = np.asarray(frame_u8, np.float32) / 255.0
    return np.asarray(color.luminance_image(x)) if preserve == "luminance" else x


def prepare(vgg, frames, style, *, flows: dict, key, objective: Objective, weights, solver,
            temporal_weight, init, style_masks, content_mask, mask_mode, preserve_color,
            color_match) -> Clip:
    """Check the inputs and make the :class:`Clip` every mode solves.

    Colour control is the clip's, not each frame's: ``"histogram"`` matches the styles to
    the colour statistics of all frames together, so the target does not change from frame
    to frame."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
        raise ValueError(f"frames must be [N, H, W, 3], not {frames.shape}")
    content = (frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8
               else np.asarray(frames, np.float32))
    styles = as_image_list(style)
    if 1 not in flows:
        raise ValueError("flows: give at least the flows between neighbours (gap 1)")
    for gap, pairs in flows.items():
        if not isinstance(pairs, FlowPairs) or pairs.back.shape[:3] != content.shape[:3]:
            raise ValueError(f"flows[{gap}] do not belong to these frames")
    run_content, run_styles = jnp.asarray(content), styles
    if preserve_color is not None:
        tall = jnp.asarray(content.reshape(-1, *content.shape[2:]))
        _, run_styles = color.prepare_inputs(tall, styles, preserve=preserve_color,
                                             method=color_match)
        if preserve_color == "luminance":
            run_content = color.luminance_image(run_content)
    run_content = np.asarray(run_content, np.float32)
    targets = compute_targets(vgg, run_content[0], run_styles, objective=objective,
                              style_masks=style_masks, content_mask=content_mask,
                              mask_mode=mask_mode)
    if weights is None:
        weights = loss_weights(objective, n_styles=len(styles))
    if not np.isfinite(temporal_weight) or temporal_weight < 0:
        raise ValueError(f"temporal weight must be >= 0, not {temporal_weight}")
    k_init, k_loss = jax.random.split(key)
    return Clip(vgg, content, run_content, targets, weights, k_loss, k_init, run_styles,
                flows, objective, solver, float(temporal_weight), init, preserve_color)


def start_image(clip: Clip, i: int):
    """Frame ``i``'s start without a previous output (``init``: a name or an image)."""
    if isinstance(clip.init, str):
        return initial_image(clip.run_content[i], clip.styles, clip.init, clip.init_key)
    return jnp.asarray(clip.init, jnp.float32)


@jax.jit
def frame_inputs(previous, flows, weights, strength, start):
    """``(x0, Temporal)`` of a frame: its start, the nearest earlier output warped into it
    where the flow is reliable and ``start`` elsewhere, ``c ω(x⁽ⁱ⁻¹⁾) + (1 − c) start``
    (Ruder et al. start from the warped output everywhere and leave the disoccluded
    regions to the optimisation, over many more iterations than a CPU affords: the warped
    output there is a smear of whatever was in front), and the temporal loss's targets
    (:func:`nstjax.video.temporal.temporal_targets`).  Compiled once per shape."""
    temporal = temporal_targets(previous, flows, weights, strength)
    c = weights[0]
    return start + c * (temporal.targets[0] - start), temporal


def earlier_outputs(clip: Clip, run_frames: Sequence, i: int, gaps, strength, start):
    """``(x0, Temporal)`` of frame ``i`` against the outputs ``gaps`` frames before it
    (none yet: zero weights, the same compiled program)."""
    zero = np.zeros(clip.content.shape[1:], np.float32)
    previous = np.stack([run_frames[i - g] if i >= g else zero for g in gaps])
    flows = np.stack([clip.flows[g].back[i] for g in gaps])
    weights = np.stack([clip.flows[g].back_weights[i] for g in gaps])
    return frame_inputs(previous, flows, weights, np.float32(strength), start)


def offset_callbacks(callbacks: Callbacks | None, done: int) -> Callbacks:
    """``callbacks`` whose progress counts iterations from ``done`` (the frames before),
    without snapshots (a frame's iterate is not the clip's picture)."""
    return offset(callbacks or Callbacks(), done, snapshots=False)


def finish(clip: Clip, frames_u8, *, done, passes, losses, terms, n_iter, seconds,
           status) -> VideoResult:
    """The :class:`VideoResult`, with the flicker measured on the gap-1 flow."""
    pairs = clip.flows[1]
    errors = np.full(len(frames_u8) - 1, np.nan, np.float32)
    total = float("nan")
    if done >= 2:
        x = np.asarray(frames_u8[:done], np.float32) / 255.0
        errors[:done - 1] = np.asarray(frame_errors_jit(x, pairs.back[:done],
                                                        pairs.back_weights[:done]))
        if done == len(frames_u8):
            total = float(np.mean(errors))
    return VideoResult(np.asarray(frames_u8), int(done), int(passes),
                       np.asarray(losses, np.float32),
                       {k: np.asarray(v, np.float32) for k, v in terms.items()},
                       np.asarray(n_iter, np.int32), np.asarray(seconds, np.float32),
                       int(status), errors, total)


def run_frames(clip: Clip, *, independent: bool, long_term: Sequence[int] = (1,),
               callbacks: Callbacks | None = None, on_frame: Callable | None = None,
               done: Sequence = ()) -> VideoResult:
    """The sequential algorithm (or independent frames), frame after frame.

    Args:
      clip: from :func:`prepare`.
      independent: no temporal loss, every frame from ``init``.
      long_term: gaps of the earlier frames in the temporal loss (``(1,)``: short-term).
      callbacks: progress (iterations over all frames), stop request.
      on_frame: ``(i, uint8[H, W, 3], info)`` after each finished frame.
      done: frames already finished (``uint8``), from a stopped run: continue after them.
    """
    n = len(clip.content)
    gaps = tuple(sorted(set(int(g) for g in long_term)))
    out = np.zeros(clip.content.shape, np.uint8)
    run = [None] * n
    losses, seconds = np.full(n, np.nan), np.full(n, np.nan)
    n_iter = np.zeros(n, np.int32)
    terms: dict = {}
    for i, frame in enumerate(done):
        out[i] = frame
        run[i] = to_run_space(frame, clip.preserve)
    status = Status.MAX_ITER
    strength = 0.0 if independent else clip.strength
    for i in range(len(done), n):
        if callbacks is not None and callbacks.should_stop is not None \
                and callbacks.should_stop():
            status = Status.INTERRUPTED
            break
        started = time.perf_counter()
        start = start_image(clip, i)
        warped, temporal = earlier_outputs(clip, run, i, gaps, strength, start)
        x0 = start if independent or i == 0 else warped
        problem = frame_problem(clip, i, temporal)
        result = solve(x0, problem, clip.solver,
                       offset_callbacks(callbacks, i * clip.solver.max_iter),
                       objective=clip.objective)
        if int(result.status) == Status.INTERRUPTED:
            status = Status.INTERRUPTED
            break
        if int(result.status) == Status.NON_FINITE:
            status = Status.NON_FINITE
        image = (result.image if clip.preserve != "luminance" else color.finish_output(
            result.image, jnp.asarray(clip.content[i]), preserve=clip.preserve))
        out[i] = to_uint8(image)
        run[i] = to_run_space(out[i], clip.preserve)
        losses[i], n_iter[i] = float(result.loss), int(result.n_iter)
        seconds[i] = time.perf_counter() - started
        for k, v in result.terms.items():
            terms.setdefault(k, np.full(n, np.nan))[i] = float(v)
        if on_frame is not None:
            on_frame(i, out[i], {"loss": losses[i], "iterations": int(n_iter[i]),
                                 "seconds": seconds[i],
                                 "terms": {k: float(v) for k, v in result.terms.items()}})
    else:
        i = n
    return finish(clip, out, done=i, passes=int(i == n), losses=losses, terms=terms,
                  n_iter=n_iter, seconds=seconds, status=status)
