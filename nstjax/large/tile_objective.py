"""The objective of one tile: the whole image's Gram statistics over a window.

For Gram losses a tile minimises the whole image's objective as a function of its core:
the content loss over the window and the style loss of the whole image's Gram matrices,
the rest of the image's share held (block-coordinate descent on the untiled objective,
mathur2017 eq. 3-5).  :mod:`nstjax.large.tiling` drives the tiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.large.tile_layout import TileLayout, core_weights
from nstjax.losses import core as losses
from nstjax.losses import get_style_loss
from nstjax.model.layers import VGGWeights
from nstjax.model.vgg import extract_features
from nstjax.objective.config import LossWeights, Objective
from nstjax.objective.masks import mask_pyramid
from nstjax.objective.terms import (  # noqa: F401
    Targets,
    compute_targets,
    positions as _positions,
    scaled_style_targets,
)
from nstjax.run.transfer import as_image_list


def area_scaled_weights(weights: LossWeights, objective: Objective, fraction) -> LossWeights:
    """``weights`` for a part covering ``fraction`` of the full image's area (see the
    module notes): the style weight times ``fraction`` under the ``"sum"`` content loss,
    whose content and TV terms grow with the area; otherwise every term is per position
    or per value and the weights are unchanged."""
    if objective.content_loss == "sum":
        return weights._replace(style_weight=weights.style_weight * fraction)
    return weights


def gram_objective(objective: Objective) -> bool:
    """True when every style method compares Gram matrices (its target is
    :func:`nstjax.losses.core.gram_matrix`): the tiles then solve the whole image's style term
    exactly (:func:`tile_problem`)."""
    return objective.normalization == "nstjax" and all(
        get_style_loss(m).target is losses.gram_matrix for m in objective.style_losses)


def window_grams(vgg, window, mask, layers_pooling):
    layers, pooling = layers_pooling
    features = extract_features(vgg, window, layers, pooling=pooling)
    pyramid = mask_pyramid(mask, layers)
    return {l: losses.gram_matrix(features[l], mask=pyramid[l]) for l in layers}


window_grams = jax.jit(window_grams, static_argnums=3)


def tile_grams(vgg: VGGWeights, image, layout: TileLayout, i: int, *, objective: Objective,
               overlap: int, coverage: np.ndarray | None = None) -> dict:
    """Tile ``i``'s share of the whole image's Gram matrices: ``{style layer: Σ_p w_p f_p
    f_pᵀ}`` over its window of ``image``, ``w`` its core's blend weights (a partition of
    unity, so the tiles' shares add up to the whole image's Gram, mathur2017 eq. 2)."""
    (wh, ww), (wy, wx) = layout.window, layout.windows[i]
    _, window_w = core_weights(layout, i, image.shape[:2], overlap, coverage=coverage)
    window = jnp.asarray(np.asarray(image)[wy:wy + wh, wx:wx + ww], jnp.float32)
    return window_grams(vgg, window, jnp.asarray(window_w),
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
      is the whole image's, ``E_l = Σ(G_window + R − A)² / (4N²M²)`` (mathur2017 eq. 3), with
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


def full_targets(vgg: VGGWeights, content, style, *, objective: Objective) -> Targets:
    """The untiled run's targets (for comparing a tiled result's full objective)."""
    return compute_targets(vgg, jnp.asarray(content, jnp.float32), as_image_list(style),
                           objective=objective)
