"""Maximum Mean Discrepancy between the feature distributions of two images.

Each spatial position of a feature map ``F: f32[H, W, C]`` is one sample of ``C``
dimensions (li2017 §3.1), so an image at one layer is a set of ``n = H·W`` samples
``x_1 … x_n`` and the style image a set of ``m`` samples ``y_1 … y_m``.  The squared MMD
(li2017 eq. 2) is

    MMD² = 1/n² Σ_ii' k(x_i, x_i') + 1/m² Σ_jj' k(y_j, y_j') − 2/(nm) Σ_ij k(x_i, y_j).

For the linear and polynomial kernels it has closed forms in sufficient statistics of each
set, so the style target is computed once and the loss is linear in ``n``:

* linear, ``k(x, y) = xᵀy``:  ``MMD² = ‖μ_x − μ_y‖²`` with ``μ`` the mean sample;
* polynomial, ``k(x, y) = (xᵀy + c)²``: expanding the square,
  ``Σ_ii' (x_iᵀx_i')² = ‖G_x‖_F²`` with ``G_x = Σ_i x_i x_iᵀ`` (the Gram matrix),
  ``Σ_ii' x_iᵀx_i' = n² ‖μ_x‖²`` and the ``c²`` terms cancel (1 + 1 − 2), so

      MMD²_poly = ‖G_x/n − G_y/m‖_F² + 2c ‖μ_x − μ_y‖²,

  whose target is ``(G_y/m, μ_y)``.  With ``c = 0`` and ``n = m = M`` this is
  ``4 N² E_l`` of Gatys (li2017 eq. 8-9; ``E_l`` from mathur2017 eq. 3).

The Gaussian kernel has no finite sufficient statistic; :func:`mmd_gaussian` uses the
unbiased linear-time estimator of Gretton et al. (2012, §6) over sampled pairs, as li2017
§3.2 does, and :func:`mmd_gaussian_full` is the quadratic-time reference for tests.

References:
  li2017 (Li et al., "Demystifying Neural Style Transfer"): eq. 2 (MMD²), eq. 8-9
  (Gram = poly MMD), eq. 10 (MMD style loss), §3.2 (kernels), §4 (bandwidth).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from nstjax.losses.core import gram_matrix, position_mean, position_weights, sizes
from nstjax.losses.feature_stats import bandwidth, samples
from nstjax.losses.registry import register_builtin as register_style_loss


def _count(x):
    """Number of rows of a sample matrix as a float32 scalar (never an int product)."""
    return jnp.asarray(x.shape[0], jnp.float32)


# --------------------------------------------------------------------------- linear


def linear_target(features):
    """Sufficient statistic of the linear-kernel MMD: the mean sample ``μ_y``.

    Args:
      features: style features ``f32[H, W, C]``.

    Returns:
      ``f32[C]``.
    """
    return jnp.mean(samples(features), axis=0)


def mmd_linear(features, target_mean, *, mask=None):
    """Squared MMD with the linear kernel, ``‖μ_x − μ_y‖²`` (li2017 §3.2, kernel 1).

    Args:
      features: ``f32[H, W, C]``.
      target_mean: ``f32[C]`` from :func:`linear_target`.
      mask: optional ``f32[H, W]`` position weights (:func:`nstjax.losses.core.position_weights`).

    Returns:
      ``f32[]``.
    """
    d = position_mean(samples(features), position_weights(features, mask)) - target_mean
    return jnp.sum(d * d)


# --------------------------------------------------------------------------- polynomial


class PolyTarget(NamedTuple):
    """Sufficient statistics of the degree-2 polynomial MMD.

    Attributes:
      gram: ``G_y / m``, ``f32[C, C]``.
      mean: ``μ_y``, ``f32[C]``.
    """

    gram: jax.Array
    mean: jax.Array


def poly_target(features) -> PolyTarget:
    """``(G_y/m, μ_y)`` of the style features ``f32[H, W, C]``."""
    y = samples(features)
    return PolyTarget(gram_matrix(features) / _count(y), jnp.mean(y, axis=0))


def mmd_poly(features, target: PolyTarget, *, c=0.0, mask=None):
    """Squared MMD with ``k(x, y) = (xᵀy + c)²`` (li2017 §3.2, kernel 2; eq. 9 for c=0).

    Computed in closed form, ``‖G_x/n − G_y/m‖_F² + 2c ‖μ_x − μ_y‖²`` (module docstring).

    Args:
      features: ``f32[H, W, C]``.
      target: from :func:`poly_target`.
      c: kernel offset (traceable).
      mask: optional ``f32[H, W]`` position weights (then ``n = Σ_p w_p``).

    Returns:
      ``f32[]``.
    """
    x = samples(features)
    _, n = sizes(features, mask=mask)
    dg = gram_matrix(features, mask=mask) / n - target.gram
    dm = position_mean(x, position_weights(features, mask)) - target.mean
    return jnp.sum(dg * dg) + 2.0 * c * jnp.sum(dm * dm)


# --------------------------------------------------------------------------- Gaussian


def _sq_dist_rows(a, b):
    d = a - b
    return jnp.sum(d * d, axis=-1)


def gaussian_pairs(n: int, m: int, key):
    """Index pairs of the linear-time estimator: ``(i_x: i32[P, 2], i_y: i32[P, 2])``.

    ``P = min(n, m) // 2`` (static).  The two index sets are drawn without replacement
    from independent permutations (``key`` split in two), so ``x_{i1} ≠ x_{i2}`` as
    samples and the estimator's expectation over keys is the unbiased statistic
    :func:`mmd_gaussian_full` with ``unbiased=True``.
    """
    p = min(n, m) // 2
    if p < 1:
        raise ValueError(f"the Gaussian MMD estimator needs at least 2 samples per set, "
                         f"got {n} and {m}")
    kx, ky = jax.random.split(key)
    ix = jax.random.permutation(kx, n)[: 2 * p].reshape(p, 2)
    iy = jax.random.permutation(ky, m)[: 2 * p].reshape(p, 2)
    return ix, iy


def mmd_gaussian(features, style_features, key, *, sigma2=0.0, mask=None, width=2.0):
    """Unbiased linear-time estimate of the Gaussian-kernel MMD² (li2017 §3.2, kernel 3).

    ``k(x, y) = exp(−‖x − y‖² / (width · σ²))``: ``width`` 2 is the paper's Gaussian kernel
    ``exp(−‖x − y‖²/(2σ²))``, 1 the released code's ``exp(−γ‖x − y‖²)`` with ``γ = 1/σ²``
    (paper mode uses it).  With ``P = min(n, m) // 2`` disjoint pairs
    ``(x_a, x_b)``, ``(y_a, y_b)`` drawn by ``key`` (:func:`gaussian_pairs`),

        MMD²_l = 1/P Σ_p [k(x_a, x_b) + k(y_a, y_b) − k(x_a, y_b) − k(x_b, y_a)]

    (Gretton et al. 2012, Lemma 14).  ``σ²`` is ``sigma2`` if > 0, else the mean squared
    distance over the ``4P`` pairs used (:func:`bandwidth`, li2017 §4).

    The value is deterministic for a key.  It is not zero at ``x = y`` (different samples are
    paired) and can be negative; its mean over keys is the unbiased U-statistic
    (``mmd_gaussian_full(..., unbiased=True)``), which at ``x = y`` is ``O(1/n)``.  For one
    key it is not invariant to permuting positions; its distribution over keys is.

    Args:
      features: ``f32[H, W, C]`` (or any ``f32[..., C]``).
      style_features: ``f32[H', W', C]``, the target (sizes may differ).
      key: PRNG key.
      sigma2: bandwidth override, used where > 0 (traceable).
      mask: optional ``f32[H, W]`` position weights: pair ``p`` counts ``w_a·w_b`` of the
        generated image's two positions.
      width: the kernel's ``width`` (traceable).

    Returns:
      ``f32[]``.
    """
    x, y = samples(features), samples(style_features)
    ix, iy = gaussian_pairs(x.shape[0], y.shape[0], key)
    xa, xb, ya, yb = x[ix[:, 0]], x[ix[:, 1]], y[iy[:, 0]], y[iy[:, 1]]
    d = jnp.stack([_sq_dist_rows(xa, xb), _sq_dist_rows(ya, yb),
                   _sq_dist_rows(xa, yb), _sq_dist_rows(xb, ya)])
    w = position_weights(features, mask)
    if w is None:
        k = jnp.exp(-d / (width * bandwidth(d, sigma2)))
        return jnp.mean(k[0] + k[1] - k[2] - k[3])
    pair_w = w[ix[:, 0]] * w[ix[:, 1]]
    # the bandwidth from the pairs that count, each as much as its term of the estimate
    k = jnp.exp(-d / (width * bandwidth(d, sigma2, weights=pair_w[None, :])))
    return position_mean(k[0] + k[1] - k[2] - k[3], pair_w)


def mmd_gaussian_full(features, style_features, sigma2, *, unbiased: bool = False):
    """Quadratic-time Gaussian MMD² over all pairs (a reference for tests; ``O(n² C)`` memory).

    Args:
      features: ``f32[..., C]``.
      style_features: ``f32[..., C]``.
      sigma2: bandwidth ``σ²`` (> 0).
      unbiased: ``False``: the biased V-statistic of li2017 eq. 2 (``1/n²`` sums, zero at
        ``x = y``); ``True``: the U-statistic (``1/(n(n−1))`` sums without the diagonal for
        the within-set terms), the expectation of :func:`mmd_gaussian`.

    Returns:
      ``f32[]``.
    """
    x, y = samples(features), samples(style_features)
    n, m = _count(x), _count(y)

    def kernel(a, b):
        return jnp.exp(-_sq_dist_rows(a[:, None, :], b[None, :, :]) / (2.0 * sigma2))

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    if unbiased:
        within = ((jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1.0))
                  + (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1.0)))
    else:
        within = jnp.sum(kxx) / (n * n) + jnp.sum(kyy) / (m * m)
    return within - 2.0 * jnp.sum(kxy) / (n * m)


# --------------------------------------------------------------------- the registered methods


def _identity(features):
    return features


@register_style_loss("mmd-linear", target=linear_target, scale=1.6e5,
                     reference="li2017 eq. 10, linear kernel, Z = N",
                     paper_factor=lambda n, m: m / 2.0, paper_scale=1e3)
def _linear(f, t, *, hyper, key, mask=None):
    n, _ = sizes(f)
    return mmd_linear(f, t, mask=mask) / n


@register_style_loss("mmd-poly", target=poly_target, scale=0.33, hyper={"c": 0.0},
                     reference="li2017 eq. 9-10, (xᵀy + c)², Z = 4N²",
                     paper_factor=lambda n, m: m, paper_scale=0.05)
def _poly(f, t, *, hyper, key, mask=None):
    n, _ = sizes(f)
    return mmd_poly(f, t, c=hyper["c"], mask=mask) / (4.0 * n * n)


@register_style_loss("mmd-gauss", target=_identity, scale=1.5e11,
                     hyper={"sigma2": 0.0, "width": 2.0},
                     uses_key=True, permutation_invariant=False,
                     reference="li2017 eq. 10 + §4, Gaussian kernel, linear-time "
                               "estimator, Z = 1",
                     paper_factor=lambda n, m: 1.0 / (4.0 * n), paper_scale=1.5e14)
def _gauss(f, t, *, hyper, key, mask=None):
    return mmd_gaussian(f, t, key, sigma2=hyper["sigma2"], mask=mask, width=hyper["width"])
