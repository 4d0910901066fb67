"""The temporal terms' inputs and the measure of flicker (pure JAX).

:func:`long_term_weights` makes the weights of several earlier frames disjoint (Ruder et al.
eq. 8); :func:`blend_neighbour` is the multi-pass algorithm's start of a pass (§3.4 of the
2018 IJCV paper); :func:`temporal_error` is the flicker an output shows, the mean over frames
of the flow-weighted squared difference between output ``t`` and the warped output ``t − 1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nstjax.objective.temporal import Temporal
from nstjax.video.warp import warp, warp_frames


def long_term_weights(weights):
    """``c_long⁽ⁱ⁻ʲ'ⁱ⁾ = max(c⁽ⁱ⁻ʲ'ⁱ⁾ − Σ_{k<j} c⁽ⁱ⁻ᵏ'ⁱ⁾, 0)`` for gaps ordered nearest first.

    Args:
      weights: ``f32[J, H, W, 1]``, the consistency weights of frame ``i`` against the
        frames ``j₁ < j₂ < …`` before it (nearest first).

    Returns:
      ``f32[J, H, W, 1]``: each pixel takes the nearest earlier frame where it is visible.

    References:
      Ruder, Dosovitskiy, Brox 2016, eq. (8) and the text after it.
    """
    before = jnp.cumsum(weights, axis=0) - weights
    return jnp.maximum(weights - before, 0.0)


def temporal_targets(previous, flows, weights, strength) -> Temporal:
    """The :class:`~nstjax.objective.temporal.Temporal` of one frame: earlier outputs
    warped into it.

    Args:
      previous: ``f32[J, H, W, 3]`` earlier outputs, nearest first.
      flows: ``f32[J, H, W, 2]`` this frame → each of them.
      weights: ``f32[J, H, W, 1]`` their consistency weights (made disjoint here when
        ``J > 1``, :func:`long_term_weights`).
      strength: ``f32[]`` the temporal weight.
    """
    weights = long_term_weights(weights) if weights.shape[0] > 1 else weights
    return Temporal(targets=warp_frames(previous, flows), weights=weights,
                    strength=jnp.asarray(strength, jnp.float32))


def blend_neighbour(x, neighbour, flow, weight, blend):
    """The start of a multi-pass update: ``x + δ c (ω(x_nb) − x)``, i.e.
    ``δ c ω(x_nb) + (1 − δ + δ (1 − c)) x``.

    Args:
      x: ``f32[H, W, 3]`` this frame's output of the last pass.
      neighbour: ``f32[H, W, 3]`` the neighbour's output (the frame before in the pass's
        direction).
      flow: ``f32[H, W, 2]`` this frame → the neighbour.
      weight: ``f32[H, W, 1]`` its consistency weights ``c``.
      blend: ``f32[]`` ``δ`` in [0, 1] (traced).

    References:
      Ruder, Dosovitskiy, Brox, "Artistic style transfer for videos and spherical
      images", IJCV 2018, §4.5 (multi-pass algorithm), the initialisation of pass ``j``.
    """
    return x + blend * weight * (warp(neighbour, flow) - x)


def frame_errors(outputs, flows, weights):
    """``e_t = Σ_p c_t(p) |y_t(p) − ω(y_{t−1})(p)|² / (3 Σ_p c_t(p))`` for ``t ≥ 1``.

    Args:
      outputs: ``f32[N, H, W, 3]``.
      flows: ``f32[N, H, W, 2]``, ``flows[t]``: frame ``t`` → ``t − 1`` (``flows[0]``
        unused).
      weights: ``f32[N, H, W, 1]`` their consistency weights.

    Returns:
      ``f32[N − 1]``.
    """
    warped = warp_frames(outputs[:-1], flows[1:])
    c = weights[1:]
    diff = jnp.sum(c * (outputs[1:] - warped) ** 2, axis=(1, 2, 3))
    return diff / jnp.maximum(3.0 * jnp.sum(c, axis=(1, 2, 3)), 1.0)


@jax.jit
def temporal_error(outputs, flows, weights):
    """The flicker of a clip: the mean of :func:`frame_errors` (``f32[]``, in squared
    [0, 1] units)."""
    return jnp.mean(frame_errors(outputs, flows, weights))
