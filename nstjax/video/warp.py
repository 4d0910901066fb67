"""Warping an image by an optical flow: bilinear sampling in JAX (pure; ``vmap`` over frames).

A flow ``w`` given at the pixels of frame ``i`` pointing into frame ``j`` (``p ↦ p + w(p)``)
warps frame ``j``'s image into frame ``i``: ``ω(x)(p) = x(p + w(p))``, bilinear between the
four neighbours, the nearest edge pixel outside the image (the consistency weights give
such pixels no weight; :func:`nstjax.video.flow.inside_weights`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def warp(image, flow):
    """``image`` sampled at ``p + flow(p)``.

    Args:
      image: ``f32[H, W, C]``.
      flow: ``f32[H, W, 2]``, ``(dx, dy)`` in pixels (OpenCV's order).

    Returns:
      ``f32[H, W, C]``.

    References:
      Ruder, Dosovitskiy, Brox 2016, §3.2: ``ω_i^{i+1}``, the warping function of eq. (7).
    """
    h, w = image.shape[:2]
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")
    sx = jnp.clip(xs + flow[..., 0], 0.0, w - 1.0)
    sy = jnp.clip(ys + flow[..., 1], 0.0, h - 1.0)
    x0 = jnp.clip(jnp.floor(sx), 0, w - 2).astype(jnp.int32) if w > 1 else jnp.zeros_like(
        sx, jnp.int32)
    y0 = jnp.clip(jnp.floor(sy), 0, h - 2).astype(jnp.int32) if h > 1 else jnp.zeros_like(
        sy, jnp.int32)
    x1, y1 = jnp.minimum(x0 + 1, w - 1), jnp.minimum(y0 + 1, h - 1)
    fx = (sx - x0)[..., None]
    fy = (sy - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


warp_frames = jax.vmap(warp)
"""``warp`` over a leading frame axis: ``f32[N, H, W, C]`` by ``f32[N, H, W, 2]``."""
