"""Print sizes by tiling: a coarse global solve, then overlapping tiles blended without seams.

An image too big for one solve (a 6000×4000 poster) is stylised in three steps:

1. **Coarse**: the whole content image at a low resolution (long edge ``coarse``) is
   solved as usual, so the composition is decided globally (coarse-to-fine: the high-resolution procedure of Gatys et al. 2017,
   "Controlling Perceptual Factors in Neural Style Transfer", §5, which starts the fine
   solve from the upsampled coarse result; not among the seeds).
2. **Tiles**: the coarse result, upsampled to full size, is the start.  Equal windows of
   ``tile`` pixels (one compiled program serves them all; memory is one window's) are
   solved in turn, each starting from the image so far.  A window writes only its
   *core*, the window less ``margin`` pixels of context on each side, so the core's
   features near its border see the image around it through the receptive field rather
   than zero padding.  Each tile matches the style by itself, over its core's blend
   weights, with the style weight of an untiled run of its area, so every tile carries
   the style as strongly as the untiled image.  With ``match="whole"`` a Gram tile's loss
   is instead the whole image's objective as a function of its core, the margin held
   and the rest of the image's Gram matrices kept current (:func:`tile_problem`):
   block-coordinate descent on the whole image's objective, in which the first tiles
   take up the whole image's style deficit when tiles get few iterations.  The style
   images keep their own size in both stages (``--style-size``; on the command line
   ``--size``, as untiled, or the largest that fits), their Gram targets rescaled to the positions of what they are
   matched on (:func:`scaled_style_targets`).
3. **Blend**: the cores are averaged with weights that ramp linearly over ``overlap``
   pixels at every interior core edge (feathering), normalised to sum to 1 at every pixel:
   no seam, no hard edge.

The objective's balance is kept across scales: with the ``"sum"`` content loss the content
and TV terms grow with the area solved while style terms (normalised by the number of
positions) do not, so the coarse solve (and a tile that matches the style by itself) is
solved with the style weight scaled by its share of the area, mathur2017 eq. 5; with the
default ``"mse"`` every term is per position or per value and no weight changes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_arrays import check_image_array
from nstjax.large.tile_layout import ALIGN, coverage_of, neighbours, tile_layout
from nstjax.large.tile_objective import (  # noqa: F401
    area_scaled_weights,
    full_targets,
    gram_objective,
    scaled_style_targets,
    tile_grams,
    tile_problem,
    window_grams,
)
from nstjax.losses import style_targets
from nstjax.model.layers import VGGWeights
from nstjax.model.vgg import extract_features
from nstjax.objective.config import LossWeights, Objective
from nstjax.objective.config import loss_weights as make_loss_weights
from nstjax.objective.terms import Targets, auto_scales
from nstjax.run import color
from nstjax.run.hooks import Callbacks, offset
from nstjax.run.result import Stage, TransferResult, staged_result
from nstjax.run.transfer import Problem, as_image_list, initial_image, solve
from nstjax.solve.minimize import Status
from nstjax.solve.solver import Solver


def stylize_tiled(vgg: VGGWeights, content, style, *, key, objective: Objective = Objective(),
                  weights: LossWeights | None = None, solver: Solver = Solver(),
                  tile: int = 512, overlap: int = 32, margin: int = 64,
                  coarse: int | None = None, coarse_solver: Solver | None = None,
                  weights_at: int | None = None, init="content",
                  callbacks: Callbacks | None = None,
                  log: Callable[[str], None] | None = None,
                  preserve_color: str | None = None,
                  color_match: str = "cholesky", match: str = "local") -> TransferResult:
    """Stylise an image of any size: a coarse global solve, overlapping tiles, a blend.

    Every tile solves a ``tile × tile`` window (memory is that of one window) but writes
    only its core, the window less ``margin`` pixels of context on each side: the core's
    border positions see the image around them through the network's receptive field, not
    zero padding.  The tile's content and style losses are weighted by its core's blend
    weights (guided statistics, Gatys et al. 2017 §4; zero over the margin), so a tile
    matches the whole style image's statistics over exactly what it writes.

    Args:
      vgg: the network's parameters.
      content: ``f32[H, W, 3]`` RGB in [0, 1], any size.
      style: one style image or a sequence of them (their statistics are taken whole).
      key: PRNG key.
      objective: the static :class:`Objective`.
      weights: :class:`LossWeights` for the full image (default :func:`nstjax.loss_weights`).
      solver: the :class:`Solver` of every tile.
      tile: edge in pixels of the solved window (windows are ``min(tile, H) × min(tile,
        W)``).
      overlap: pixels over which neighbouring cores are blended (at least this much).
      margin: context pixels on each side of a core, solved but not written.
      coarse: long edge of the global solution (default ``tile``; 0 skips it and the tiles
        start from ``init``).
      coarse_solver: solver of the global solution (default ``solver``).
      weights_at: long edge in pixels at which ``weights`` balance the terms (default:
        the image's own size).  With the ``"sum"`` content loss the content term grows
        with the pixels and the style terms do not (mathur2017 eq. 1, 3), so weights that
        stylise a 1024-pixel image barely touch a 6000-pixel one; with ``weights_at=1024``
        the style weight is scaled by the image's area over that size's, so the poster is
        balanced like a 1024-pixel run (``"mse"``: no change is needed).
      init: start of the global solution: ``"content"``, ``"noise"`` or ``"style"``.
      callbacks: host callbacks; ``should_stop`` is honoured in every solve; ``progress``
        receives ``(i, loss)`` with ``i`` counted over all solves (coarse first);
        ``snapshot`` receives ``(i, f32[H, W, 3])``, the blend so far, after every tile.
      log: called with one line per stage (``"tile 3/35"``), or None.

      preserve_color, color_match: as for :func:`nstjax.stylize`, around the whole solve.
      match: ``"local"`` (default): every tile matches the style by itself, so each has
        the style's strength of an untiled run; ``"whole"``: for Gram methods, each tile
        lowers the whole image's objective with the rest held (block-coordinate descent),
        which lets the first tiles take up the whole image's style deficit when tiles get
        few iterations.

    Returns:
      A :class:`~nstjax.TransferResult` of the blended image, with a
      :class:`~nstjax.run.result.Stage` for the coarse solve (named ``"coarse WxH"``) and
      one per tile solved (``"tile i/n"``, its window and the core it wrote); its status
      is ``INTERRUPTED`` when a stop request ended the run (the tile being solved then
      keeps its partial solution; later tiles keep the start).
    """
    if preserve_color is not None:
        return color.with_color_control(
            lambda c, st, i, cb: stylize_tiled(
                vgg, c, st, key=key, objective=objective, weights=weights, solver=solver,
                tile=tile, overlap=overlap, margin=margin, coarse=coarse,
                coarse_solver=coarse_solver, weights_at=weights_at, init=i, callbacks=cb,
                log=log, match=match),
            content, as_image_list(style), init, callbacks, preserve=preserve_color,
            method=color_match)
    log = log or (lambda _: None)
    content = check_image_array(content, "content")
    styles = as_image_list(style)
    if weights is None:
        weights = make_loss_weights(objective, n_styles=len(styles))
    h, w = content.shape[:2]
    tile, overlap, margin = int(tile), int(overlap), int(margin)
    if tile < 2 * ALIGN:
        raise ValueError(f"tile must be at least {2 * ALIGN} pixels, got {tile}")
    if overlap < 0 or margin < 0:
        raise ValueError(f"tile overlap and margin must be >= 0, got {overlap} and {margin}")
    if margin % ALIGN:
        raise ValueError(f"tile margin must be a multiple of {ALIGN}, got {margin}")
    layout = tile_layout((h, w), tile, overlap, margin)    # checks the overlap per axis
    k_init, k_coarse, k_loss = jax.random.split(key, 3)
    area = float(h) * float(w)
    if weights_at is not None:
        at = min(1.0, int(weights_at) / max(h, w))
        weights = area_scaled_weights(weights, objective, area / ((h * at) * (w * at)))
    stage_callbacks = _StageCallbacks(callbacks)
    stages = []

    # the style targets once, at the style images' own size; Gram targets are rescaled to
    # the positions of the image they are matched on (scaled_style_targets)
    style_t = tuple(style_targets(objective.style_losses,
                                  extract_features(vgg, s, objective.style_layers,
                                                   pooling=objective.pooling))
                    for s in styles)
    style_shapes = [s.shape[:2] for s in styles]

    # 1. the global low-resolution solution, upsampled: every tile's start
    coarse = tile if coarse is None else int(coarse)
    coarse_solver = coarse_solver or solver
    scale = min(1.0, (coarse or tile) / max(h, w))
    cshape = (max(ALIGN, round(h * scale)), max(ALIGN, round(w * scale)))
    small = _resize(content, cshape)
    targets = Targets(
        content=extract_features(vgg, small, objective.content_layers,
                                 pooling=objective.pooling),
        style=scaled_style_targets(style_t, objective, cshape, style_shapes))
    x0 = initial_image(small, styles, init, k_init)
    coarse_weights = area_scaled_weights(weights, objective, cshape[0] * cshape[1] / area)
    if objective.auto_scale:     # λ measured once, on the whole image at the coarse size
        weights = weights._replace(style_scales=auto_scales(
            x0, vgg, targets, coarse_weights, k_coarse, objective=objective))
        coarse_weights = coarse_weights._replace(style_scales=weights.style_scales)
        objective = dataclasses.replace(objective, auto_scale=False)
    done = 0
    if coarse > 0:
        log(f"coarse {cshape[1]}×{cshape[0]}")
        res = solve(x0, Problem(vgg, targets, coarse_weights, k_coarse), coarse_solver,
                    stage_callbacks(0), objective=objective)
        stages.append(Stage(name=f"coarse {cshape[1]}×{cshape[0]}", result=res))
        low = jnp.asarray(res.image)
        start = _resize(low, (h, w))
        done = coarse_solver.max_iter
    else:
        start = initial_image(content, styles, init, k_init)

    # 2. tiles, each with its content features and its part of the whole image's style
    style_t = scaled_style_targets(style_t, objective, (h, w), style_shapes)
    (ch, cw), (wh, ww) = layout.core, layout.window
    n = len(layout.cores)
    canvas = np.array(start, np.float32)
    acc = np.zeros((h, w, 3), np.float32)
    total = np.zeros((h, w, 1), np.float32)
    coverage = coverage_of(layout, (h, w), overlap)
    if match not in ("local", "whole"):
        raise ValueError(f"match must be 'local' or 'whole', not {match!r}")
    exact = match == "whole" and gram_objective(objective)
    if exact:     # every tile's share of the whole image's Gram matrices, kept current
        def share(j):
            return tile_grams(vgg, canvas, layout, j, objective=objective, overlap=overlap,
                              coverage=coverage)
        grams = [share(j) for j in range(n)]
    for i in range(n):
        if stage_callbacks.stopped():
            break
        (y0, x0), (wy, wx) = layout.cores[i], layout.windows[i]
        log(f"tile {i + 1}/{n} at ({x0}, {y0})")
        rest = None
        if exact:     # the whole image's Gram less the window's own part, held fixed
            window = window_grams(vgg, jnp.asarray(canvas[wy:wy + wh, wx:wx + ww]),
                                   jnp.ones((wh, ww), jnp.float32),
                                   (tuple(objective.style_layers), objective.pooling))
            whole = {l: sum(g[l] for g in grams) for l in objective.style_layers}
            rest = ({l: whole[l] - window[l] for l in whole},) * len(styles)
        targets, tile_weights, core_w = tile_problem(vgg, content, style_t, layout, i,
                                                     objective=objective, weights=weights,
                                                     overlap=overlap, coverage=coverage,
                                                     rest_grams=rest)
        # start from the canvas: where a solved neighbour overlaps, from its solution
        x_window = jnp.asarray(canvas[wy:wy + wh, wx:wx + ww])
        frozen = np.ones((wh, ww, 1), np.float32)      # the context margin is held
        frozen[y0 - wy:y0 - wy + ch, x0 - wx:x0 - wx + cw] = 0.0
        res = solve(x_window, Problem(vgg, targets, tile_weights, k_loss, jnp.asarray(frozen)),
                    solver, stage_callbacks(done), objective=objective)
        done += solver.max_iter
        stages.append(Stage(name=f"tile {i + 1}/{n}", result=res, window=(wy, wx, wh, ww),
                            core=(y0, x0, ch, cw)))
        solved = np.asarray(res.image)[y0 - wy:y0 - wy + ch, x0 - wx:x0 - wx + cw]
        acc[y0:y0 + ch, x0:x0 + cw] += core_w[..., None] * solved
        total[y0:y0 + ch, x0:x0 + cw] += core_w[..., None]
        part = total[y0:y0 + ch, x0:x0 + cw]
        canvas[y0:y0 + ch, x0:x0 + cw] = np.where(
            part > 0, acc[y0:y0 + ch, x0:x0 + cw] / np.maximum(part, 1e-30),
            canvas[y0:y0 + ch, x0:x0 + cw])
        if exact:     # this tile's share and its side neighbours' (the blend moved them)
            for j in neighbours(layout, i):
                grams[j] = share(j)
        if callbacks is not None and callbacks.snapshot is not None:
            callbacks.snapshot(done, canvas.copy())

    # 3. the feathered blend (a stopped run keeps the upsampled start where no tile wrote)
    if not stages:        # stopped before the first solve
        nan = jnp.float32(jnp.nan)
        return TransferResult(image=jnp.asarray(canvas), loss=nan, history=jnp.zeros((0,)),
                              n_iter=jnp.int32(0), status=jnp.int32(Status.INTERRUPTED),
                              terms={}, weights=weights)
    return staged_result(stages, jnp.asarray(canvas), interrupted=stage_callbacks.stopped())


class _StageCallbacks:
    """Per-solve callbacks that count iterations over all solves and remember a stop."""

    def __init__(self, callbacks: Callbacks | None):
        self.callbacks, self._stopped = callbacks, False

    def __call__(self, done: int) -> Callbacks:
        c = self.callbacks or Callbacks()

        def should_stop():
            if c.should_stop is not None and c.should_stop():
                self._stopped = True
            return self._stopped

        return offset(Callbacks(progress=c.progress, should_stop=should_stop), done)

    def stopped(self) -> bool:
        c = self.callbacks
        if not self._stopped and c is not None and c.should_stop is not None:
            self._stopped = bool(c.should_stop())
        return self._stopped


def _resize(image, shape):
    return jnp.clip(jax.image.resize(image, tuple(shape) + (3,), "linear"), 0.0, 1.0)
