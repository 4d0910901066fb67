"""Transparent content: an alpha channel as the weight of every position in the losses.

A pixel's opacity ``α ∈ [0, 1]`` (alpha byte / 255) is how much it counts.  Through the
per-position mask contract of :mod:`nstjax.losses.core` and :mod:`nstjax.objective.masks`:

* the content loss at each content layer is weighted by the average-pooled pyramid of
  ``α`` (:func:`nstjax.objective.masks.mask_pyramid`), multiplied into any content-mask map, so a
  feature position whose whole pooling block is transparent has weight 0 and its
  gradient is exactly zero;
* every style's statistics are taken over ``α`` times that style's mask (one mask per
  style, Gatys et al. 2017 §4's guided statistics), so transparent regions do not enter
  the Gram matrices, moments or MMD pairs the style is compared with.

Transparent pixels can still receive a gradient from opaque positions whose receptive
fields reach them (a halo as wide as the deepest layer's receptive field); they are never
shown, and the output keeps the input's alpha byte for byte (:func:`nstjax.save_image`
``alpha=``).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from nstjax.objective import masks


def alpha_weights(alpha) -> jnp.ndarray:
    """``uint8[H, W]`` alpha bytes (or floats in [0, 1]) as ``f32[H, W]`` weights in [0, 1].

    Raises:
      ValueError: not two-dimensional, values outside [0, 1], or fully transparent.
    """
    a = np.asarray(alpha)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    a = masks.check_mask(a, "alpha")
    if not float(jnp.max(a)) > 0.0:
        raise ValueError("the content is fully transparent: nothing to stylise")
    return a


def alpha_style_masks(alpha, style_masks: Sequence | None, *, n_styles: int,
                      shape: tuple[int, int]) -> list:
    """Pixel masks of the styles times the opacity: ``[α · m_s]`` (``m_s`` = 1 without
    masks), all resampled to ``shape``, for :func:`nstjax.compute_targets`."""
    a = masks.resize_mask(alpha_weights(alpha), shape)
    if style_masks is None:
        return [a] * n_styles
    return [a * masks.resize_mask(masks.check_mask(m, f"style mask {i + 1}"), shape)
            for i, m in enumerate(style_masks)]


def alpha_content_mask(targets, alpha, *, shape: tuple[int, int],
                       content_layers: Sequence[str]):
    """``targets`` with its content-loss weight maps multiplied by the average-pooled
    pyramid of ``α`` (resampled to the image's ``shape``)."""
    a = masks.resize_mask(alpha_weights(alpha), shape)
    pyramid = masks.mask_pyramid(a, content_layers, mode="average")
    if targets.content_mask is None:
        return targets._replace(content_mask=pyramid)
    return targets._replace(content_mask={k: targets.content_mask[k] * pyramid[k]
                                          for k in targets.content_mask})
