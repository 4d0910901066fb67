"""Statistics of a feature set that several style families share: the sample matrix,
weighted central moments, mean and covariance, a square root safe at 0, and the Gaussian
kernel's bandwidth.

A feature map ``F: f32[H, W, C]`` is ``n = H·W`` samples of ``C`` dimensions (li2017 §3.1);
``mask`` weights positions (guided statistics, Gatys et al. 2017 §4).  The families
(:mod:`~nstjax.losses.mmd`, :mod:`~nstjax.losses.statistics`,
:mod:`~nstjax.losses.distribution`, :mod:`~nstjax.losses.patches`) import these and
:mod:`nstjax.losses.core`, never each other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nstjax.losses.core import position_mean, position_weights


def samples(features):
    """``f32[..., C]`` to the sample matrix ``f32[n, C]`` (one row per position)."""
    return jnp.reshape(features, (-1, features.shape[-1]))


def safe_sqrt(x):
    """``√x`` for ``x ≥ 0`` with gradient 0 (not ∞) at ``x = 0``."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def central_moments(features, order: int, *, mask=None):
    """Mean and central moments per channel.

    Args:
      features: ``f32[H, W, C]``.
      order: highest moment ``N`` (static).
      mask: optional ``f32[H, W]`` position weights (weighted mean and moments).

    Returns:
      ``f32[N, C]``: row 0 the mean ``μ``, row ``k−1`` the central moment ``m_k``, ``k ≥ 2``.
    """
    x = samples(features)
    w = position_weights(features, mask)
    mu = position_mean(x, w)
    d = x - mu
    rows, power = [mu], d
    for _ in range(2, order + 1):
        power = power * d
        rows.append(position_mean(power, w))
    return jnp.stack(rows)


def mean_and_covariance(features, *, mask=None):
    """Mean ``f32[C]`` and population covariance ``f32[C, C]`` over (weighted) positions."""
    x = samples(features)
    w = position_weights(features, mask)
    mu = position_mean(x, w)
    d = x - mu
    if w is None:
        cov = jnp.matmul(d.T, d, precision=jax.lax.Precision.HIGHEST) / x.shape[0]
    else:
        cov = jnp.matmul((d * w[:, None]).T, d, precision=jax.lax.Precision.HIGHEST) / jnp.sum(w)
    return mu, 0.5 * (cov + cov.T)


def bandwidth(sq_dists, sigma2, *, axis=None, weights=None):
    """``σ²``: ``sigma2`` where > 0, else the mean of ``sq_dists`` over ``axis`` (no gradient).

    li2017 §4 fixes the bandwidth to the mean squared distance of the sampled pairs.  It
    is a heuristic constant of the kernel, not part of what is matched, so no gradient flows
    through it (``stop_gradient``): differentiating it would also push the features to move
    the bandwidth.  The choice is a ``jnp.where``, so ``sigma2`` can be traced and vmapped.
    A floor at the smallest normal float keeps ``0/σ²`` finite when all distances are 0.
    """
    if weights is None:
        data = jnp.mean(sq_dists, axis=axis)
    else:   # masked positions: only the pairs that count set the width
        weights = jnp.broadcast_to(weights, sq_dists.shape)
        data = jnp.sum(sq_dists * weights, axis=axis) / jnp.maximum(
            jnp.sum(weights, axis=axis), jnp.finfo(sq_dists.dtype).tiny)
    data = jax.lax.stop_gradient(data)
    s2 = jnp.where(sigma2 > 0, sigma2, data)
    return jnp.maximum(s2, jnp.finfo(s2.dtype).tiny)
