"""Coarse-to-fine transfer: a ladder of sizes, each solve warm-started from the last.

Large structure is cheap to find at a small size, where VGG's deep layers see most of the
picture; the full size then only refines it.  :func:`size_ladder` gives long edges growing
by a factor of at most √2 from ``min_size`` to ``size``; :func:`stylize_multiscale` runs
:func:`nstjax.stylize` (the one driver, :func:`nstjax.run.transfer.drive`) once per rung: the
content and the styles resized by the rung's factor (the style's size relative to the
content stays fixed, so its texture keeps its scale on the picture), the style targets
recomputed from them, and the start image the previous rung's result upsampled
(bilinear).  The last rung is the full-size problem of a single-scale run, with the same
images, targets and objective, so final objectives can be compared directly.

This is the multi-resolution recipe of jcjohnson/neural-style's ``multires.sh`` and of
Gatys et al. 2017 §6 ("Controlling Perceptual Factors in Neural Style Transfer",
coarse-to-fine for high resolutions), done in one call.

Measured (``benchmarks/multiscale.py``, tubingen/starry_night at 512 px, Gram, plbfgs,
CPU; equal CPU time within ±10 %): the ladder 128→512 does *not* reach a lower full-size
objective than 80 single-scale iterations: ×1.13 (iterations 80,80,50,30,24), ×1.09 with
``add_detail``, ×1.04 (40,40,30,30,50), ×1.16 from noise.  What it buys is large
structure: long swirling strokes across the sky instead of a uniform fine grain, and from
noise a coherent blue sky and clean reflections where one scale leaves grey-brown noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_arrays import check_image_array
from nstjax.model.layers import VGGWeights
from nstjax.objective.config import LossWeights, Objective, loss_weights
from nstjax.run import color
from nstjax.run.hooks import Callbacks, offset
from nstjax.run.result import Stage, TransferResult, staged_result
from nstjax.run.transfer import as_image_list, initial_image, stylize
from nstjax.solve.solver import Solver
from nstjax.solve.warm import MOMENT_OPTIMIZERS

LADDER_FACTOR = math.sqrt(2.0)
MIN_EDGE = 16          # VGG's relu5_1 needs at least 16 pixels on each side
DEFAULT_MIN_SIZE = 128             # the command's default ladder starts at this long edge
DEFAULT_SCALE_ITERS = (150, 60, 40)   # its iterations at the first size, each between, the last
DEFAULT_PARAMETRIZATION = "laplacian"  # the image it optimises (Objective.parametrization)


def default_iterations(n_scales: int) -> tuple[int, ...]:
    """The default ladder's iterations on ``n_scales`` rungs: :data:`DEFAULT_SCALE_ITERS`'
    first, ``n_scales − 2`` times its middle, then its last (one rung: the last)."""
    first, between, last = DEFAULT_SCALE_ITERS
    if n_scales <= 1:
        return (last,)
    return (first,) + (between,) * (n_scales - 2) + (last,)


def size_ladder(min_size: int, size: int, *, factor: float = LADDER_FACTOR) -> tuple[int, ...]:
    """Long edges from ``min_size`` to ``size``, geometric, consecutive ratios ≤ ``factor``.

    ``n = ⌈log(size/min_size) / log factor⌉`` steps of the same ratio
    ``(size/min_size)^(1/n)``, rounded to pixels; ``min_size == size`` gives ``(size,)``.

    Raises:
      ValueError: ``min_size`` below 16 or above ``size``, or ``factor`` ≤ 1.
    """
    min_size, size = int(min_size), int(size)
    if factor <= 1.0:
        raise ValueError(f"ladder factor must be above 1, not {factor}")
    if min_size < MIN_EDGE:
        raise ValueError(f"min size {min_size} is below the {MIN_EDGE}-pixel minimum")
    if min_size > size:
        raise ValueError(f"min size {min_size} is above the output size {size}")
    n = math.ceil(math.log(size / min_size) / math.log(factor) - 1e-9)
    if n == 0:
        return (size,)
    ratio = (size / min_size) ** (1.0 / n)
    return tuple(int(round(min_size * ratio ** i)) for i in range(n)) + (size,)


def scale_iterations(iters: int | Sequence[int], n_scales: int) -> tuple[int, ...]:
    """Iterations per rung, coarse first: one value for every rung, or a list whose last
    value repeats on the rungs after it (``(1000, 500)``: 1000 at the first size, 500 at
    each other, crowsonkb/style-transfer-pytorch's schedule).

    Raises:
      ValueError: a count below 1, or a list longer than the ladder.
    """
    counts = (int(iters),) if np.ndim(iters) == 0 else tuple(int(i) for i in iters)
    if not counts or len(counts) > n_scales:
        raise ValueError(f"{len(counts)} iteration counts for a ladder of {n_scales} sizes "
                         "(give at most one per size)")
    if min(counts) < 1:
        raise ValueError("iterations per scale must be at least 1")
    return counts + (counts[-1],) * (n_scales - len(counts))


def scaled_hw(shape: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """``(h, w)`` of an image of ``shape`` resized so its long edge is ``long_edge``."""
    h, w = shape
    s = long_edge / max(h, w)
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def resize_image(image, shape: tuple[int, int]):
    """``f32[h, w, 3]`` resized to ``shape`` (bilinear, antialiased when shrinking); the
    same array when the shape already matches."""
    image = jnp.asarray(image, jnp.float32)
    if tuple(image.shape[:2]) == tuple(shape):
        return image
    return jnp.clip(jax.image.resize(image, tuple(shape) + image.shape[2:], "linear"), 0.0, 1.0)


def stylize_multiscale(vgg: VGGWeights, content, style, *, key, min_size: int,
                       iters: int | Sequence[int], objective: Objective = Objective(),
                       weights: LossWeights | None = None, solver: Solver = Solver(),
                       init="content", callbacks: Callbacks | None = None,
                       factor: float = LADDER_FACTOR, add_detail: bool = False,
                       style_masks=None, content_mask=None, mask_mode: str = "average",
                       alpha=None, preserve_color: str | None = None,
                       color_match: str = "cholesky",
                       carry_moments: bool = False,
                       content_decay: float = 1.0) -> TransferResult:
    """Coarse-to-fine style transfer: :func:`nstjax.stylize` on each rung of a size ladder.

    Args:
      vgg: the network's parameters.
      content: ``f32[H, W, 3]`` at the full output size.
      style: one style image or a sequence, at their full-size resolution (each rung
        resizes them by the rung's factor, ``long edge / max(H, W)``).
      key: PRNG key (split per rung).
      min_size: long edge of the first rung (≥ 16; the short edge must be ≥ 16 too).
      iters: iterations per rung, one value or one per rung (see :func:`size_ladder`);
        ``solver.max_iter`` is replaced by them.
      objective, weights, solver: as for :func:`nstjax.stylize` (the same at every rung).
      init: start of the first rung: ``"content"``, ``"noise"``, ``"style"``, ``"grey"``
        or an ``f32[H, W, 3]`` image (resized to the rung).
      callbacks: host callbacks; iteration numbers run on across rungs; a stop request
        ends the ladder after the current rung.
      factor: largest ratio between consecutive rungs (√2).
      add_detail: start each rung at the previous result upsampled *plus* the content's
        detail that upsampling lost (``content_k − up(content_{k−1})``, the band a
        Laplacian pyramid adds), so the content loss does not jump at every rung.
      style_masks, content_mask, mask_mode, alpha: as for :func:`nstjax.stylize`, at any
        size (each rung resamples them to its own).
      preserve_color, color_match: as for :func:`nstjax.stylize`, applied once around the
        whole ladder.
      carry_moments: start each rung's Adam with the previous rung's moment estimates,
        resized (crowsonkb/style-transfer-pytorch; :mod:`nstjax.solve.warm`); needs
        ``solver.optimizer`` ``"adam"``.
      content_decay: the factor the content weight takes from one rung to the next finer:
        rung ``k`` of ``n`` has ``α · content_decay^(k−n+1)``, so the last has ``α`` and
        with 0.5 each coarser one twice the next (STROTSS halves it at every scale).  A traced leaf: no rung
        compiles again for it.

    Returns:
      A :class:`~nstjax.TransferResult` of the last rung's image upsampled to the full size
      (the full size itself unless stopped early), with a :class:`~nstjax.run.result.Stage`
      per rung run (named by its size).
    """
    content = check_image_array(content, "content")
    styles = as_image_list(style)
    if preserve_color is not None:
        return color.with_color_control(
            lambda c, s, i, cb: stylize_multiscale(
                vgg, c, s, key=key, min_size=min_size, iters=iters, objective=objective,
                weights=weights, solver=solver, init=i, callbacks=cb, factor=factor,
                add_detail=add_detail, style_masks=style_masks, content_mask=content_mask,
                mask_mode=mask_mode, alpha=alpha, carry_moments=carry_moments,
                content_decay=content_decay),
            content, styles, init, callbacks, preserve=preserve_color, method=color_match)
    if carry_moments and solver.optimizer not in MOMENT_OPTIMIZERS:
        raise ValueError(f"carrying moments across sizes needs the optimizer "
                         f"{' or '.join(MOMENT_OPTIMIZERS)}, not {solver.optimizer}")
    full = tuple(content.shape[:2])
    ladder = size_ladder(min_size, max(full), factor=factor)
    counts = scale_iterations(iters, len(ladder))
    shapes = [scaled_hw(full, edge) for edge in ladder]
    if min(shapes[0]) < MIN_EDGE:
        raise ValueError(f"min size {min_size} makes the first rung {shapes[0][1]}×"
                         f"{shapes[0][0]}, below {MIN_EDGE} pixels on its short edge")
    if not 0.0 < float(content_decay) <= 1e3:
        raise ValueError(f"content decay must be a positive number, not {content_decay}")
    if weights is None:
        weights = loss_weights(objective, n_styles=len(styles))
    stages, x, done = [], None, 0
    for k, (shape, count) in enumerate(zip(shapes, counts)):
        weights_k = weights if content_decay == 1.0 else weights._replace(
            content_weight=weights.content_weight
            * jnp.float32(float(content_decay) ** (k - len(shapes) + 1)))
        scale = max(shape) / max(full)
        content_k = resize_image(content, shape)
        styles_k = [resize_image(s, scaled_hw(s.shape[:2], max(
            MIN_EDGE, round(max(s.shape[:2]) * scale)))) for s in styles]
        if x is not None:
            init_k = resize_image(x, shape)
            if add_detail:
                lost = content_k - resize_image(resize_image(content, shapes[k - 1]), shape)
                init_k = jnp.clip(init_k + lost, 0.0, 1.0)
        elif isinstance(init, str):
            init_k = initial_image(content_k, styles_k, init, jax.random.fold_in(key, 1000))
        else:
            init_k = resize_image(init, shape)
        warm = stages[-1].result.opt_state if stages else None
        if stages:       # used once: no stage keeps an optimiser state alive
            stages[-1] = stages[-1]._replace(result=stages[-1].result._replace(opt_state=None))
        result = stylize(vgg, content_k, styles_k, key=jax.random.fold_in(key, k),
                         objective=objective, weights=weights_k,
                         solver=dataclasses.replace(solver, max_iter=count), init=init_k,
                         callbacks=offset(callbacks, done), style_masks=style_masks,
                         content_mask=content_mask, mask_mode=mask_mode, alpha=alpha,
                         warm_start=warm,
                         keep_opt_state=carry_moments and k + 1 < len(shapes))
        stages.append(Stage(name=f"{shape[1]}×{shape[0]}", result=result))
        x = result.image
        done += int(result.n_iter)
        if callbacks is not None and callbacks.should_stop is not None \
                and callbacks.should_stop():
            break
    return staged_result(stages, resize_image(x, full),
                         interrupted=len(stages) < len(shapes))
