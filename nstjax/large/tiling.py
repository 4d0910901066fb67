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
   than zero padding.  For Gram methods (the default) a tile's loss is the whole image's
   objective as a function of its core, the margin held and the rest of the image's Gram
   matrices kept current (:func:`tile_problem`): the tiles in turn are block-coordinate
   descent on the whole image's objective.  Other style methods match the whole style
   image's statistics tile by tile, over the core's blend weights.  The style
   images keep their own size in both stages (``--style-size``; the window's by default on
   the command line), their Gram targets rescaled to the positions of what they are
   matched on (:func:`scaled_style_targets`).
3. **Blend**: the cores are averaged with weights that ramp linearly over ``overlap``
   pixels at every interior core edge (feathering), normalised to sum to 1 at every pixel:
   no seam, no hard edge.

The objective's balance is kept across scales: with the ``"sum"`` content loss the content
and TV terms grow with the area solved while style terms (normalised by the number of
positions) do not, so the coarse solve (and a tile that matches the style by itself) is
solved with the style weight scaled by its share of the area (``"mse"``: the TV weight by
the inverse), seed 001 eq. 5.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.objective.config import LossWeights, Objective, Solver, loss_weights as make_loss_weights
from nstjax.run.hooks import Callbacks
from nstjax.losses import core as losses
from nstjax.solve import optimize
from nstjax.objective.masks import mask_pyramid
from nstjax.objective.terms import Targets, auto_scales, compute_targets, total_loss
from nstjax.losses import get_style_loss, style_targets
from nstjax.run.transfer import Program, as_image_list, drive, initial_image
from nstjax.large.tile_layout import (ALIGN, TileLayout, core_weights, coverage_of, tile_layout,
                                neighbours)
from nstjax.model.vgg import extract_features
from nstjax.model.layers import VGGWeights

class TiledResult(NamedTuple):
    """Outcome of :func:`stylize_tiled`.

    Attributes:
      image: ``f32[H, W, 3]`` the blended result.
      coarse: ``f32[h, w, 3]`` the global low-resolution solution.
      tiles: ``((y0, x0), ...)`` the cores' top-left corners (all ``tile_shape``): what
        each tile wrote.
      tile_shape: ``(ch, cw)`` the cores' shape.
      tile_loss: ``f32[n_solved]`` each solved tile's final objective (its own weights).
      windows: ``((y0, x0), ...)`` the solved windows' top-left corners.
      window_shape: ``(wh, ww)``.
      stopped: True when a stop request ended the run (the tile being solved then keeps
        its partial solution; later tiles keep the start).
    """

    image: jax.Array
    coarse: jax.Array
    tiles: tuple
    tile_shape: tuple
    tile_loss: np.ndarray
    windows: tuple = ()
    window_shape: tuple = ()
    stopped: bool = False


def area_scaled_weights(weights: LossWeights, objective: Objective, fraction) -> LossWeights:
    """``weights`` for a part covering ``fraction`` of the full image's area (see the
    module notes): the style weight times ``fraction`` (``"sum"`` content loss) or the TV
    weight divided by it (``"mse"``)."""
    if objective.content_loss == "sum":
        return weights._replace(style_weight=weights.style_weight * fraction)
    return weights._replace(tv_weight=weights.tv_weight / fraction)


def gram_objective(objective: Objective) -> bool:
    """True when every style method compares Gram matrices (its target is
    :func:`nstjax.losses.core.gram_matrix`): the tiles then solve the whole image's style term
    exactly (:func:`tile_problem`)."""
    return objective.normalization == "nstjax" and all(
        get_style_loss(m).target is losses.gram_matrix for m in objective.style_losses)


def _window_grams(vgg, window, mask, layers_pooling):
    layers, pooling = layers_pooling
    features = extract_features(vgg, window, layers, pooling=pooling)
    pyramid = mask_pyramid(mask, layers)
    return {l: losses.gram_matrix(features[l], mask=pyramid[l]) for l in layers}


_window_grams = jax.jit(_window_grams, static_argnums=3)


def _positions(shape, layers) -> dict:
    return {l: float(np.prod(s.shape)) for l, s in jax.eval_shape(
        lambda: mask_pyramid(jnp.ones(tuple(shape)), layers)).items()}


def scaled_style_targets(style_targets_: tuple, objective: Objective, image_shape,
                         style_shapes) -> tuple:
    """Gram targets rescaled from each style image's positions to the image's.

    Gatys' loss compares unnormalised Gram matrices (seed 001 eq. 2-3), which grow with the
    number of positions ``M``: a style image of another size than the image asks for
    features ``M_style/M`` times as strong.  The tiles (a window of a poster) and the
    coarse solve (a small copy) are matched against a style image of its own size, so
    each Gram target ``A`` becomes ``A · M_image / M_style`` per layer: the style's
    per-position statistics, as if it covered the image.  Where the style image has the
    image's positions this changes nothing; averages (MMD, BN, moments) never change.
    """
    gram_methods = [m for m in objective.style_losses
                    if get_style_loss(m).target is losses.gram_matrix]
    if not gram_methods:
        return tuple(style_targets_)
    image_m = _positions(image_shape, objective.style_layers)
    out = []
    for target, shape in zip(style_targets_, style_shapes):
        style_m = _positions(shape, objective.style_layers)
        out.append({m: ({l: a * (image_m[l] / style_m[l]) for l, a in per_layer.items()}
                         if m in gram_methods else per_layer)
                    for m, per_layer in target.items()})
    return tuple(out)


def tile_grams(vgg: VGGWeights, image, layout: TileLayout, i: int, *, objective: Objective,
               overlap: int, coverage: np.ndarray | None = None) -> dict:
    """Tile ``i``'s share of the whole image's Gram matrices: ``{style layer: Σ_p w_p f_p
    f_pᵀ}`` over its window of ``image``, ``w`` its core's blend weights (a partition of
    unity, so the tiles' shares add up to the whole image's Gram, seed 001 eq. 2)."""
    (wh, ww), (wy, wx) = layout.window, layout.windows[i]
    _, window_w = core_weights(layout, i, image.shape[:2], overlap, coverage=coverage)
    window = jnp.asarray(np.asarray(image)[wy:wy + wh, wx:wx + ww], jnp.float32)
    return _window_grams(vgg, window, jnp.asarray(window_w),
                         (tuple(objective.style_layers), objective.pooling))


def tile_problem(vgg: VGGWeights, content, style_targets_: tuple, layout: TileLayout,
                 i: int, *, objective: Objective, weights: LossWeights, overlap: int,
                 coverage: np.ndarray | None = None, rest_grams: tuple | None = None):
    """Targets and loss weights of tile ``i``: its part of the whole image's objective.

    The content loss is weighted by the core's blend weights (a partition of unity, 0 over
    the context margin), so the tiles' content losses add up to the whole image's.

    Style, two ways:

    * ``rest_grams`` given (Gram methods, :func:`gram_objective`): the tile's loss is the
      whole image's objective as a function of its core, the rest of the image held.  Every
      position of the window counts once (the margin's positions see the core through the
      receptive field), and ``R`` is the whole image's Gram less the window's own
      (``Σ`` of the tiles' shares minus the window's Gram at the start), so the style term
      is the whole image's, ``E_l = Σ(G_window + R − A)² / (4N²M²)`` (seed 001 eq. 3), with
      ``M`` the whole image's positions: the guided loss with target ``A − R`` and the
      layer weight times ``(M_window/M)²`` (the method normalises by the window's
      positions).  Solving the tiles in turn, their margins held, is block-coordinate
      descent on the whole image's objective.
    * otherwise each tile matches the style by itself: its statistics are guided by its
      blend weights rescaled per layer to sum to the whole image's positions (a statistic
      that grows with the positions takes the whole image's value when the tile looks
      like the whole image; averages are unchanged), and the style weight is scaled by the
      tile's share of the area (:func:`area_scaled_weights`).

    Returns:
      ``(Targets over the window, LossWeights, f32[ch, cw] the core's blend weights)``.
    """
    h, w = content.shape[:2]
    (wh, ww), (wy, wx) = layout.window, layout.windows[i]
    core_w, window_w = core_weights(layout, i, (h, w), overlap, coverage=coverage)
    full_positions = _positions((h, w), objective.style_layers)
    mask = jnp.asarray(window_w) if rest_grams is None else jnp.ones((wh, ww), jnp.float32)
    pyramid = mask_pyramid(mask, objective.style_layers)
    c_window = jax.lax.dynamic_slice(jnp.asarray(content, jnp.float32), (wy, wx, 0),
                                     (wh, ww, 3))
    content_t = extract_features(vgg, c_window, objective.content_layers,
                                 pooling=objective.pooling)
    if rest_grams is not None:
        style = tuple({m: {l: a - rest[l] for l, a in per_layer.items()}
                       for m, per_layer in target.items()}
                      for target, rest in zip(style_targets_, rest_grams))
        share = jnp.stack([(jnp.sum(pyramid[l]) / full_positions[l]) ** 2
                           for l in objective.style_layers])
        tile_weights = weights._replace(
            style_layer_weights=weights.style_layer_weights * share)
        style_mask = pyramid
    else:
        style = tuple(style_targets_)
        style_mask = {l: m * (full_positions[l] / jnp.sum(m)) for l, m in pyramid.items()}
        fraction = float(core_w.sum()) / (float(h) * float(w))
        tile_weights = area_scaled_weights(weights, objective, fraction)
    targets = Targets(content=content_t, style=style,
                      style_masks=(style_mask,) * len(style_targets_),
                      content_mask=mask_pyramid(mask, objective.content_layers))
    return targets, tile_weights, core_w


def stylize_tiled(vgg: VGGWeights, content, style, *, key, objective: Objective = Objective(),
                  weights: LossWeights | None = None, solver: Solver = Solver(),
                  tile: int = 512, overlap: int = 32, margin: int = 64,
                  coarse: int | None = None, coarse_solver: Solver | None = None,
                  weights_at: int | None = None, init="content",
                  callbacks: Callbacks | None = None,
                  log: Callable[[str], None] | None = None) -> TiledResult:
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
        with the pixels and the style terms do not (seed 001 eq. 1, 3), so weights that
        stylise a 1024-pixel image barely touch a 6000-pixel one; with ``weights_at=1024``
        the style weight is scaled by the image's area over that size's (``"mse"``: the TV
        weight by the inverse), so the poster is balanced like a 1024-pixel run.
      init: start of the global solution: ``"content"``, ``"noise"`` or ``"style"``.
      callbacks: host callbacks; ``should_stop`` is honoured in every solve; ``progress``
        receives ``(i, loss)`` with ``i`` counted over all solves (coarse first);
        ``snapshot`` receives ``(i, f32[H, W, 3])``, the blend so far, after every tile.
      log: called with one line per stage (``"tile 3/35"``), or None.

    Returns:
      A :class:`TiledResult`.
    """
    log = log or (lambda _: None)
    content = jnp.asarray(content, jnp.float32)
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
    layout = tile_layout((h, w), tile, overlap, margin)
    if overlap >= min(layout.core):
        raise ValueError(f"tile overlap {overlap} must be below the tile size "
                         f"{min(layout.core)}")
    k_init, k_coarse, k_loss = jax.random.split(key, 3)
    area = float(h) * float(w)
    if weights_at is not None:
        at = min(1.0, int(weights_at) / max(h, w))
        weights = area_scaled_weights(weights, objective, area / ((h * at) * (w * at)))
    stages = _stages(callbacks)

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
        program = _window_programs(vgg, objective, coarse_solver, k_coarse)
        res, _, _ = drive(program(x0, targets, coarse_weights, jnp.zeros(cshape)),
                          coarse_solver.max_iter, stages(0))
        low = jnp.asarray(res.x)
        start = _resize(low, (h, w))
        done = coarse_solver.max_iter
    else:
        low = jnp.zeros((0, 0, 3), jnp.float32)
        start = initial_image(content, styles, init, k_init)

    # 2. tiles, each with its content features and its part of the whole image's style
    style_t = scaled_style_targets(style_t, objective, (h, w), style_shapes)
    (ch, cw), (wh, ww) = layout.core, layout.window
    n = len(layout.cores)
    canvas = np.array(start, np.float32)
    acc = np.zeros((h, w, 3), np.float32)
    total = np.zeros((h, w, 1), np.float32)
    program_of = _window_programs(vgg, objective, solver, k_loss)
    coverage = coverage_of(layout, (h, w), overlap)
    exact = gram_objective(objective)
    if exact:     # every tile's share of the whole image's Gram matrices, kept current
        def share(j):
            return tile_grams(vgg, canvas, layout, j, objective=objective, overlap=overlap,
                              coverage=coverage)
        grams = [share(j) for j in range(n)]
    tile_losses = []
    for i in range(n):
        if stages.stopped():
            break
        (y0, x0), (wy, wx) = layout.cores[i], layout.windows[i]
        log(f"tile {i + 1}/{n} at ({x0}, {y0})")
        rest = None
        if exact:     # the whole image's Gram less the window's own part, held fixed
            window = _window_grams(vgg, jnp.asarray(canvas[wy:wy + wh, wx:wx + ww]),
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
        frozen = np.ones((wh, ww), np.float32)      # the context margin is held
        frozen[y0 - wy:y0 - wy + ch, x0 - wx:x0 - wx + cw] = 0.0
        res, _, _ = drive(program_of(x_window, targets, tile_weights, frozen), solver.max_iter,
                          stages(done))
        done += solver.max_iter
        tile_losses.append(float(res.value))
        solved = np.asarray(res.x)[y0 - wy:y0 - wy + ch, x0 - wx:x0 - wx + cw]
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
    return TiledResult(image=jnp.asarray(canvas), coarse=low, tiles=layout.cores,
                       tile_shape=layout.core, tile_loss=np.asarray(tile_losses, np.float32),
                       windows=layout.windows, window_shape=layout.window,
                       stopped=stages.stopped())


class _stages:
    """Per-solve callbacks that count iterations over all solves and remember a stop."""

    def __init__(self, callbacks: Callbacks | None):
        self.callbacks, self._stopped = callbacks, False

    def __call__(self, done: int) -> Callbacks:
        c = self.callbacks or Callbacks()

        def should_stop():
            if c.should_stop is not None and c.should_stop():
                self._stopped = True
            return self._stopped

        return Callbacks(progress=c.progress and (lambda i, v: c.progress(done + i, v)),
                         should_stop=should_stop)

    def stopped(self) -> bool:
        c = self.callbacks
        if not self._stopped and c is not None and c.should_stop is not None:
            self._stopped = bool(c.should_stop())
        return self._stopped


def _resize(image, shape):
    return jnp.clip(jax.image.resize(image, tuple(shape) + (3,), "linear"), 0.0, 1.0)


def _window_problem(frozen, vgg, targets, weights, solver, key, objective):
    """The loss of a window whose ``frozen`` pixels (``f32[h, w, 1]``, 1 over the context
    margin) are held: no gradient reaches them, so every optimiser leaves them where they
    started and the core is solved against the image around it as it will be blended."""
    def fun(x):
        x = x + frozen * (jax.lax.stop_gradient(x) - x)
        return total_loss(x, vgg, targets, weights, key, objective=objective)
    optimizer = optimize.make_optimizer(solver.optimizer, lower=0.0, upper=1.0,
                                        history_size=solver.history_size, lr=solver.lr)
    return fun, optimizer


@functools.partial(jax.jit, static_argnames=("objective",))
def _window_init(x0, frozen, vgg, targets, weights, solver, key, *, objective):
    fun, optimizer = _window_problem(frozen, vgg, targets, weights, solver, key, objective)
    return optimize.minimize_init(fun, x0, optimizer, max_iter=solver.max_iter), weights


@functools.partial(jax.jit, static_argnames=("objective",))
def _window_advance(state, frozen, vgg, targets, weights, solver, key, until, *, objective):
    fun, optimizer = _window_problem(frozen, vgg, targets, weights, solver, key, objective)
    return optimize.minimize_continue(fun, state, optimizer, until=until, rtol=solver.rtol,
                                      tol_x=solver.tol_x, threshold=solver.threshold)


@functools.partial(jax.jit, static_argnames=("objective",))
def _window_finish(state, frozen, vgg, targets, weights, solver, key, *, objective):
    fun, optimizer = _window_problem(frozen, vgg, targets, weights, solver, key, objective)
    return optimize.minimize_result(fun, state, optimizer), {}


def _window_programs(vgg, objective, solver, key):
    """``program(x0, targets, weights, frozen)``: one window's solve; every tile runs the
    same compiled program (masks, weights and the frozen margin are traced data)."""
    def program(x0, targets, weights, frozen) -> Program:
        frozen = jnp.asarray(frozen, jnp.float32)[..., None]
        bound = dict(vgg=vgg, targets=targets, solver=solver, key=key, objective=objective)
        return Program(
            init=lambda: _window_init(x0, frozen, weights=weights, **bound),
            advance=lambda state, w, until: _window_advance(state, frozen, weights=w,
                                                            until=until, **bound),
            finish=lambda state, w: _window_finish(state, frozen, weights=w, **bound))
    return program


def full_targets(vgg: VGGWeights, content, style, *, objective: Objective) -> Targets:
    """The untiled run's targets (for comparing a tiled result's full objective)."""
    return compute_targets(vgg, jnp.asarray(content, jnp.float32), as_image_list(style),
                           objective=objective)
