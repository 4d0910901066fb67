"""The temporal loss of video style transfer (Ruder, Dosovitskiy and Brox, GCPR 2016).

The output of frame ``i`` is held close to earlier outputs warped into it by the optical
flow, pixel by pixel, wherever the flow is reliable.  The warping and the per-pixel weights
``c`` are the video layer's (:mod:`nstjax.video`); this module holds the term the objective
adds, so that every driver (single solve, ``vmap`` over frames) minimises the same thing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Temporal(NamedTuple):
    """What the temporal loss reads: ``J`` warped earlier outputs and their weights.

    Attributes:
      targets: ``f32[J, H, W, 3]`` earlier outputs warped into this frame, ``ω(x⁽ⁱ⁻ʲ⁾)``.
      weights: ``f32[J, H, W, 1]`` per-pixel weights ``c`` in [0, 1] (0: occluded, on a
        motion boundary, or no target).
      strength: ``f32[]`` the temporal weight ``γ`` (traced).
    """

    targets: jax.Array
    weights: jax.Array
    strength: jax.Array


def temporal_loss(x, temporal: Temporal):
    """``γ · (1/D) Σ_j Σ_k c_jk (x_k − ω_j(x⁽ⁱ⁻ʲ⁾)_k)²``, ``D = H·W·3``.

    Args:
      x: ``f32[H, W, 3]`` the frame being solved.
      temporal: the :class:`Temporal` targets, weights and strength.

    Returns:
      ``f32[]``.

    References:
      Ruder, Dosovitskiy, Brox, "Artistic style transfer for videos", GCPR 2016, eq. (7)
      (short-term) and eq. (8) (long-term: one ``j`` per earlier frame, the weights made
      disjoint by the caller).
    """
    d = float(x.size)
    diff = x[None] - temporal.targets
    return temporal.strength * jnp.sum(temporal.weights * diff * diff) / d
