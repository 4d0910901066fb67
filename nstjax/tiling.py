"""Print sizes by tiling: a coarse global solve, then overlapping tiles blended without seams.

An image too big for one solve (a 6000×4000 poster) is stylised in three steps:

1. **Coarse**: the whole content image at a low resolution (long edge ``coarse``) is
   solved as usual, so the composition is decided globally (coarse-to-fine: the
   high-resolution procedure of Gatys et al. 2017, "Controlling Perceptual Factors in
   Neural Style Transfer", §5, which starts the fine solve from the upsampled coarse
   result; not among the seeds).
2. **Tiles**: the coarse result, upsampled to full size, is the start image; it is cut into
   equal, overlapping tiles (so one compiled program serves them all), and each tile is
   solved with its own content features but the style targets of the *whole* style image,
   computed once, so every tile matches the same statistics.
3. **Blend**: the tiles are averaged with weights that ramp linearly over ``overlap``
   pixels at every interior tile edge (feathering): no seam, no hard edge.  Tiles are
   solved in order, each starting from the running blend, so where it overlaps a solved
   neighbour it starts from that neighbour's solution and the two agree before they are
   averaged.

The objective's balance is kept across scales.  With the ``"sum"`` content loss the content
and TV terms grow with the area solved while style terms (normalised by the number of
positions) do not, so a part of area ``a`` of a full image of area ``A`` is solved with the
style weight scaled by ``a / A`` (``"mse"``: the TV weight by ``A / a``); the sum of the
tiles' objectives then approximates the full image's (seed 001 eq. 5).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.config import LossWeights, Objective, Solver, loss_weights as make_loss_weights
from nstjax.hooks import Callbacks
from nstjax.objective import Targets, compute_targets
from nstjax.style_losses import style_targets
from nstjax.transfer import (Program, _advance, _finish, _init, as_image_list, drive,
                             initial_image, stylize)
from nstjax.vgg import extract_features
from nstjax.weights import VGGWeights

# Every pooling halves the feature maps four times before relu5_1: tiles and their offsets
# are multiples of this, so a tile's features line up with the full image's.
ALIGN = 16


class TiledResult(NamedTuple):
    """Outcome of :func:`stylize_tiled`.

    Attributes:
      image: ``f32[H, W, 3]`` the blended result.
      coarse: ``f32[h, w, 3]`` the global low-resolution solution.
      tiles: ``((y0, x0), ...)`` the tiles' top-left corners (all ``tile_shape``).
      tile_shape: ``(th, tw)``.
      tile_loss: ``f32[n_tiles]`` each tile's final objective (its own scaled weights).
    """

    image: jax.Array
    coarse: jax.Array
    tiles: tuple
    tile_shape: tuple
    tile_loss: np.ndarray


def tile_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Starts of equal tiles of ``tile`` pixels covering ``[0, length)``, neighbours
    overlapping by at least ``overlap`` (the last ends at ``length``; starts are multiples
    of :data:`ALIGN` except possibly the last)."""
    if tile >= length:
        return (0,)
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got {overlap} for tile {tile}")
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    starts = [int(round(i * (length - tile) / (n - 1) / ALIGN)) * ALIGN for i in range(n - 1)]
    return tuple(starts) + (length - tile,)


def blend_weights(start: int, size: int, length: int, overlap: int) -> np.ndarray:
    """1-D feathering weights of one tile: a linear ramp over ``overlap`` pixels at each
    edge that lies inside the image, 1 elsewhere (``f32[size]``, all > 0)."""
    w = np.ones(size, np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if start > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if start + size < length:
        w[size - overlap:] = np.minimum(w[size - overlap:], ramp[::-1])
    return w


def blend(tiles: Sequence, corners: Sequence, shape: tuple, overlap: int) -> np.ndarray:
    """Feathered average of equal tiles ``f32[th, tw, C]`` placed at ``corners``.

    Returns:
      ``f32[H, W, C]`` with ``shape = (H, W, C)``.
    """
    h, w = shape[:2]
    acc = np.zeros(shape, np.float32)
    total = np.zeros(shape[:2] + (1,), np.float32)
    for tile, (y0, x0) in zip(tiles, corners):
        th, tw = tile.shape[:2]
        wy = blend_weights(y0, th, h, overlap)
        wx = blend_weights(x0, tw, w, overlap)
        weight = (wy[:, None] * wx[None, :])[..., None]
        acc[y0:y0 + th, x0:x0 + tw] += weight * np.asarray(tile, np.float32)
        total[y0:y0 + th, x0:x0 + tw] += weight
    return acc / total


def area_scaled_weights(weights: LossWeights, objective: Objective, fraction) -> LossWeights:
    """``weights`` for a part covering ``fraction`` of the full image's area (see the
    module notes): the style weight times ``fraction`` (``"sum"`` content loss) or the TV
    weight divided by it (``"mse"``)."""
    if objective.content_loss == "sum":
        return weights._replace(style_weight=weights.style_weight * fraction)
    return weights._replace(tv_weight=weights.tv_weight / fraction)


def _resize(image, shape):
    return jnp.clip(jax.image.resize(image, tuple(shape) + (3,), "linear"), 0.0, 1.0)


def stylize_tiled(vgg: VGGWeights, content, style, *, key, objective: Objective = Objective(),
                  weights: LossWeights | None = None, solver: Solver = Solver(),
                  tile: int = 512, overlap: int = 64, coarse: int | None = None,
                  coarse_solver: Solver | None = None, init="content",
                  callbacks: Callbacks | None = None,
                  log: Callable[[str], None] | None = None) -> TiledResult:
    """Stylise an image of any size: a coarse global solve, overlapping tiles, a blend.

    Args:
      vgg: the network's parameters.
      content: ``f32[H, W, 3]`` RGB in [0, 1], any size.
      style: one style image or a sequence of them (their statistics are taken whole).
      key: PRNG key.
      objective: the static :class:`Objective`.
      weights: :class:`LossWeights` for the full image (default :func:`nstjax.loss_weights`).
      solver: the :class:`Solver` of every tile.
      tile: tile edge in pixels (tiles are ``min(tile, H) × min(tile, W)``).
      overlap: pixels over which neighbouring tiles are blended (at least this much overlap).
      coarse: long edge of the global solution (default ``tile``; 0 skips it and the tiles
        start from ``init``).
      coarse_solver: solver of the global solution (default ``solver``).
      init: start of the global solution: ``"content"``, ``"noise"`` or ``"style"``.
      callbacks: host callbacks; ``should_stop`` is honoured in every solve, ``progress``
        receives ``(i, loss)`` within each solve.
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
    tile = int(tile)
    if tile < 2 * ALIGN:
        raise ValueError(f"tile must be at least {2 * ALIGN} pixels, got {tile}")
    overlap = int(overlap)
    th, tw = min(tile, h), min(tile, w)
    if overlap >= min(th, tw):
        raise ValueError(f"tile overlap {overlap} must be below the tile size {min(th, tw)}")
    k_init, k_coarse, k_loss = jax.random.split(key, 3)
    area = h * w

    # 1. the global low-resolution solution, upsampled: every tile's start
    coarse = tile if coarse is None else int(coarse)
    if coarse > 0:
        scale = min(1.0, coarse / max(h, w))
        cshape = (max(ALIGN, round(h * scale)), max(ALIGN, round(w * scale)))
        small = _resize(content, cshape)
        log(f"coarse {cshape[1]}×{cshape[0]}")
        result = stylize(vgg, small, styles, key=k_coarse, objective=objective,
                         weights=area_scaled_weights(weights, objective,
                                                     cshape[0] * cshape[1] / area),
                         solver=coarse_solver or solver, init=init, callbacks=callbacks)
        low = result.image
        start = _resize(low, (h, w))
    else:
        low = jnp.zeros((0, 0, 3), jnp.float32)
        start = initial_image(content, styles, init, k_init)

    # 2. tiles: the whole style image's targets once; content features per tile
    style_t = tuple(style_targets(objective.style_losses,
                                  extract_features(vgg, s, objective.style_layers,
                                                   pooling=objective.pooling))
                    for s in styles)
    tile_weights = area_scaled_weights(weights, objective, th * tw / area)
    corners = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    solved, losses = [], []
    canvas = np.array(start, np.float32)
    acc = np.zeros((h, w, 3), np.float32)
    total = np.zeros((h, w, 1), np.float32)
    for i, (y0, x0) in enumerate(corners):
        log(f"tile {i + 1}/{len(corners)} at ({x0}, {y0})")
        c_tile = jax.lax.dynamic_slice(content, (y0, x0, 0), (th, tw, 3))
        # start from the canvas: where a solved neighbour overlaps, from its solution, so
        # neighbours agree in the overlap before they are averaged there
        x_tile = jnp.asarray(canvas[y0:y0 + th, x0:x0 + tw])
        targets = Targets(content=extract_features(vgg, c_tile, objective.content_layers,
                                                   pooling=objective.pooling),
                          style=style_t)
        program = _tile_program(x_tile, vgg, targets, tile_weights, solver, k_loss, objective)
        res, _, _ = drive(program, solver.max_iter, callbacks)
        solved.append(np.asarray(res.x))
        losses.append(float(res.value))
        weight = (blend_weights(y0, th, h, overlap)[:, None]
                  * blend_weights(x0, tw, w, overlap)[None, :])[..., None]
        acc[y0:y0 + th, x0:x0 + tw] += weight * solved[-1]
        total[y0:y0 + th, x0:x0 + tw] += weight
        covered = total[y0:y0 + th, x0:x0 + tw] > 0
        canvas[y0:y0 + th, x0:x0 + tw] = np.where(
            covered, acc[y0:y0 + th, x0:x0 + tw] / np.maximum(total[y0:y0 + th, x0:x0 + tw],
                                                             1e-30),
            canvas[y0:y0 + th, x0:x0 + tw])
        if callbacks is not None and callbacks.should_stop is not None \
                and callbacks.should_stop():
            break
    done = corners[:len(solved)]
    if len(done) < len(corners):      # stopped: the rest keeps the upsampled start
        solved += [np.asarray(jax.lax.dynamic_slice(start, (y, x, 0), (th, tw, 3)))
                   for y, x in corners[len(done):]]

    # 3. the feathered blend
    image = blend(solved, corners, (h, w, 3), overlap)
    return TiledResult(image=jnp.asarray(image), coarse=low, tiles=tuple(corners),
                       tile_shape=(th, tw), tile_loss=np.asarray(losses, np.float32))


def _tile_program(x0, vgg, targets, weights, solver, key, objective) -> Program:
    return Program(
        init=lambda: _init(x0, vgg, targets, weights, solver, key, objective=objective),
        advance=lambda state, w, until: _advance(state, vgg, targets, w, solver, key, until,
                                                 objective=objective),
        finish=lambda state, w: _finish(state, vgg, targets, w, solver, key,
                                        objective=objective))


def full_targets(vgg: VGGWeights, content, style, *, objective: Objective) -> Targets:
    """The untiled run's targets (for comparing a tiled result's full objective)."""
    return compute_targets(vgg, jnp.asarray(content, jnp.float32), as_image_list(style),
                           objective=objective)
