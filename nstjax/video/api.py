"""``nstjax.stylize_video``: one call for every mode (:mod:`nstjax.video.driver`,
:mod:`nstjax.video.multipass`)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from nstjax.io.image_writing import to_uint8
from nstjax.objective.config import LossWeights, Objective
from nstjax.run.hooks import Callbacks
from nstjax.solve.solver import Solver
from nstjax.video import driver, multipass
from nstjax.video.driver import DEFAULT_TEMPORAL_WEIGHT, MODES, VideoResult
from nstjax.video.flow import flow_pairs

DEFAULT_PASSES = 4


def stylize_video(vgg, frames, style, *, key, mode: str = "sequential", flows=None,
                  flow_method: str = "dis", objective: Objective = Objective(),
                  weights: LossWeights | None = None, solver: Solver = Solver(),
                  temporal_weight=DEFAULT_TEMPORAL_WEIGHT, long_term: Sequence[int] = (1,),
                  passes: int = DEFAULT_PASSES, pass_iters: int | None = None,
                  blend=multipass.DEFAULT_BLEND, chunk: int | None = None, init="content",
                  style_masks=None, content_mask=None, mask_mode: str = "average",
                  preserve_color: str | None = None, color_match: str = "cholesky",
                  callbacks: Callbacks | None = None, on_frame: Callable | None = None,
                  on_checkpoint: Callable | None = None, done: Sequence = (),
                  checkpoint: dict | None = None) -> VideoResult:
    """Style transfer of a clip, temporally consistent (Ruder, Dosovitskiy, Brox 2016/2018).

    Args:
      vgg: the network's parameters.
      frames: ``uint8[N, H, W, 3]`` (or ``f32`` in [0, 1]) content frames.
      style: one style image or a list of them, as for :func:`nstjax.stylize`.
      key: PRNG key.
      mode: ``"sequential"`` (each frame from the warped previous output, with the
        temporal loss), ``"multipass"`` (all frames at once, vmapped, alternating sweeps)
        or ``"independent"`` (no temporal coupling).
      flows: ``{gap: FlowPairs}`` (:func:`nstjax.video.flow.cached_flows`); computed when
        None, with ``flow_method`` (``"dis"`` or ``"farneback"``).
      objective, weights, solver, init, style_masks, content_mask, mask_mode,
        preserve_color, color_match: as for :func:`nstjax.stylize` (``solver.max_iter``
        is per frame; in multi-pass mode the default ``pass_iters`` divides it over the
        passes).
      temporal_weight: ``γ`` of the temporal loss (traced).
      long_term: sequential mode: the gaps of the earlier frames held (``(1,)``:
        short-term only; e.g. ``(1, 2, 4)``).
      passes, pass_iters, blend, chunk: multi-pass mode: passes, iterations per frame and
        pass, the blend ``δ``, frames per vmapped program (default: as many as fit).
      callbacks: progress and stop request (:class:`nstjax.Callbacks`).
      on_frame, done: sequential modes: ``(i, uint8 frame, info)`` after each frame, and
        the frames a stopped run finished.
      on_checkpoint, checkpoint: multi-pass: the state after each chunk, and a stopped
        run's last one.

    Returns:
      A :class:`VideoResult`.

    References:
      Ruder, Dosovitskiy, Brox, "Artistic style transfer for videos", GCPR 2016;
      "... for videos and spherical images", IJCV 2018.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    gaps = tuple(sorted(set(int(g) for g in long_term)))
    if not gaps or gaps[0] < 1:
        raise ValueError(f"long_term: gaps of at least 1 frame, not {tuple(long_term)}")
    if flows is None:
        u8 = np.asarray(frames) if np.asarray(frames).dtype == np.uint8 else to_uint8(frames)
        flows = {g: flow_pairs(u8, gap=g, method=flow_method) for g in set(gaps) | {1}}
    clip = driver.prepare(vgg, frames, style, flows=flows, key=key, objective=objective,
                          weights=weights, solver=solver, temporal_weight=temporal_weight,
                          init=init, style_masks=style_masks, content_mask=content_mask,
                          mask_mode=mask_mode, preserve_color=preserve_color,
                          color_match=color_match)
    if mode != "multipass":
        return driver.run_frames(clip, independent=mode == "independent", long_term=gaps,
                                 callbacks=callbacks, on_frame=on_frame, done=done)
    h, w = np.shape(frames)[1:3]
    fit = multipass.frames_that_fit(h, w, objective, history_size=solver.history_size)
    if fit < 1:
        raise ValueError(f"not even one {w}×{h} frame fits in memory")
    chunk = min(chunk or len(clip.content), fit, len(clip.content))
    pass_iters = pass_iters or max(1, solver.max_iter // passes)
    return multipass.run_multipass(clip, passes=passes, pass_iters=pass_iters, chunk=chunk,
                                   blend=blend, callbacks=callbacks,
                                   on_checkpoint=on_checkpoint, checkpoint=checkpoint)
