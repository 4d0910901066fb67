"""Style as per-channel statistics of a feature map: BN statistics, moments, dislocators.

Every function takes one image's features ``F: f32[H, W, C]`` and summarises each channel
over the ``M = H·W`` positions, so all of them except :func:`channel_mmd_loss` ignore where
features are.  Normalisers are float32 scalars (never integer products).

Conventions (one for the whole module):

* ``μ_c = 1/M Σ_p F_pc``; central moments ``m_k = 1/M Σ_p (F_pc − μ_c)^k`` (the population,
  i.e. biased, forms, as in li2017 eq. 12);
* ``σ = √m_2`` through :func:`safe_sqrt`, whose gradient at 0 is 0 instead of ∞: dead ReLU
  channels (all zero) are common in deep layers of small images and would otherwise give NaN
  gradients; its value is exact;
* skewness ``m_3 / (m_2 + ε)^{3/2}`` and kurtosis ``m_4 / (m_2 + ε)²`` with ``ε = 1e-6``
  (feature units squared, far below any live channel's variance), which keep them finite on a
  constant channel.  Kurtosis is Pearson's (not excess): the 3 would cancel in a difference.

References:
  li2017 eq. 11-12 (BN statistics); stylerep eq. 1.4-1.6 (moment loss, ψ, channel-wise
  MMD); du2017 §3.5 (dislocators: scaled sums and sample statistics).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.losses.core import position_mean, position_weights
from nstjax.losses.feature_stats import bandwidth, central_moments, safe_sqrt, samples
from nstjax.losses.registry import register_builtin as register_style_loss

STAT_EPS = 1e-6
MAX_MOMENT = 4


def _channels(features):
    return jnp.asarray(features.shape[-1], jnp.float32)


# --------------------------------------------------------------------------- BN statistics


def bn_target(features, *, mask=None):
    """BN statistics ``(μ, σ)`` per channel (li2017 eq. 12): ``f32[2, C]``."""
    m = central_moments(features, 2, mask=mask)
    return jnp.stack([m[0], safe_sqrt(m[1])])


def bn_statistics_loss(features, target, *, mask=None):
    """``1/N Σ_i [(μ_i − μ'_i)² + (σ_i − σ'_i)²]`` (li2017 eq. 11).

    Args:
      features: ``f32[H, W, C]``.
      target: ``f32[2, C]`` from :func:`bn_target` of the style features.

    Returns:
      ``f32[]``.
    """
    d = bn_target(features, mask=mask) - target
    return jnp.sum(d * d) / _channels(features)


# --------------------------------------------------------------------------- moments


class MomentTarget(NamedTuple):
    """Style side of the moment loss.

    Attributes:
      moments: ``M_i(F^s_j)``, ``f32[N, C]`` (see :func:`central_moments`).
      channel_mean: ``M_1(M_i(F^s))``, the mean over channels of each moment, ``f32[N]``:
        the argument of ψ (stylerep eq. 1.5).
    """

    moments: jax.Array
    channel_mean: jax.Array


def moment_target(features, *, order: int = MAX_MOMENT) -> MomentTarget:
    """Moments of the style features and their channel means, ψ's arguments (eq. 1.5)."""
    mom = central_moments(features, order)
    return MomentTarget(mom, jnp.mean(mom, axis=1))


def moment_psi(channel_mean, *, literal=0.0):
    """ψ of stylerep eq. 1.5, ``min{1, 1/M_1}``, per moment.

    The seed's ψ is negative when the channel mean of an odd central moment is (a
    negative third moment is common): that moment's term then *rewards* a mismatch.  By
    default (``literal = 0``) we take ``min{1, 1/|M_1|}``, a guess of ours that keeps every
    term a penalty; ``literal = 1`` (traceable) is the equation as printed.  ``1/0 = ∞``
    gives ``ψ = 1`` either way.
    """
    m = jnp.where(jnp.asarray(literal) > 0, channel_mean, jnp.abs(channel_mean))
    return jnp.minimum(1.0, 1.0 / m)


def moment_loss(features, target: MomentTarget, weights, *, mask=None, literal_psi=0.0):
    """Moment loss ``1/C Σ_i w_i ψ_i Σ_j (M_i(F^s_j) − M_i(F_j))²`` (stylerep eq. 1.4).

    ``M_1`` is the channel mean and ``M_i``, ``i ≥ 2``, the ``i``-th central moment: the
    seed defines ``M_i`` only by reference to a section it does not contain, so central
    moments (as in the central moment discrepancy of Zellinger et al. 2017) are our guess.
    ``ψ`` (eq. 1.5, :func:`moment_psi`) divides each by its typical size when that is
    above 1. ``w_i`` (not in the paper) switches moments on and off inside one compiled
    function: ``w = (1, 1, 0, 0)`` is eq. 1.4 with ``N = 2``.

    Args:
      features: ``f32[H, W, C]``.
      target: from :func:`moment_target`, ``N`` moments.
      weights: ``f32[N]`` (traceable).
      literal_psi: 1 for eq. 1.5 as printed (signed), 0 for ``|M_1|`` (traceable).

    Returns:
      ``f32[]``.
    """
    n = target.moments.shape[0]
    d = central_moments(features, n, mask=mask) - target.moments
    per_moment = jnp.sum(d * d, axis=1)
    psi = moment_psi(target.channel_mean, literal=literal_psi)
    return jnp.sum(jnp.asarray(weights) * psi * per_moment) / _channels(features)


# --------------------------------------------------------------------------- channel MMD


def channel_mmd_loss(features, style_features, *, sigma2=0.0, mask=None):
    """Channel-wise linear-time Gaussian MMD² with fixed position pairs (stylerep eq. 1.6).

    Each channel is a set of scalar samples; positions ``2j−1`` and ``2j`` (raster order)
    form pair ``j``, the same for both images, and

        L = Σ_i 1/P Σ_{j=1}^{P} h((s_{i,2j−1}, n_{i,2j−1}), (s_{i,2j}, n_{i,2j})),
        h((s, n), (s', n')) = k(s, s') + k(n, n') − k(s, n') − k(s', n),

    with ``s`` the style and ``n`` the generated features and ``P = ⌊min(M, M_s)/2⌋`` (the
    first ``2P`` positions of each image).  Eq. 1.6 sums over ``j``; the ``1/P`` (Gretton's
    linear-time normaliser) keeps a layer's value from growing with its area.  The kernel is
    ``exp(−(a − b)²/(2σ_i²))`` with ``σ_i²`` per channel the mean of the ``4P`` squared
    differences (:func:`nstjax.losses.mmd.bandwidth`, no gradient) unless ``sigma2 > 0``.
    Eq. 1.6 defines ``h`` only by reference to a section the seed does not contain: the
    Gaussian kernel, its per-channel bandwidth and the ``1/P`` are our guesses, taken from
    the linear-time estimate of li2017 (eq. 10 with Gretton et al. 2012's ``h``).

    It is exactly zero at ``F = F^s`` (then ``h = 0`` term by term) and, since the pairs
    are fixed positions, not invariant to permuting positions.

    Args:
      features: ``f32[H, W, C]``.
      style_features: ``f32[H', W', C]``.
      sigma2: bandwidth override, used where > 0 (traceable).
      mask: optional ``f32[H, W]`` position weights; pair ``j`` counts ``w_{2j−1}·w_{2j}``.

    Returns:
      ``f32[]``.
    """
    w = position_weights(features, mask)
    n, s = samples(features), samples(style_features)
    p = min(n.shape[0], s.shape[0]) // 2
    if p < 1:
        raise ValueError("channel MMD needs at least 2 positions per image")
    n = n[: 2 * p].reshape(p, 2, -1)
    s = s[: 2 * p].reshape(p, 2, -1)
    d = jnp.stack([(s[:, 0] - s[:, 1]) ** 2, (n[:, 0] - n[:, 1]) ** 2,
                   (s[:, 0] - n[:, 1]) ** 2, (s[:, 1] - n[:, 0]) ** 2])      # [4, P, C]
    if w is None:
        s2 = bandwidth(d, sigma2, axis=(0, 1))                               # [C]
        k = jnp.exp(-d / (2.0 * s2))
        return jnp.sum(jnp.mean(k[0] + k[1] - k[2] - k[3], axis=0))
    wn = w[: 2 * p].reshape(p, 2)
    pair_w = wn[:, 0] * wn[:, 1]
    # the bandwidth from the pairs that count, each as much as its term of the estimate
    s2 = bandwidth(d, sigma2, axis=(0, 1), weights=pair_w[None, :, None])    # [C]
    k = jnp.exp(-d / (2.0 * s2))
    return jnp.sum(position_mean(k[0] + k[1] - k[2] - k[3], pair_w))


# --------------------------------------------------------------------------- dislocators


def scaled_sum(features, *, mask=None):
    """Dislocator 1 (du2017 §3.5): ``Σ_p F_pc / (C·H·W)``, ``f32[C]``.

    With a ``mask``, ``Σ_p w_p F_pc / (C·Σ_p w_p)``.
    """
    return position_mean(samples(features), position_weights(features, mask)) \
        / _channels(features)


def scaled_sum_squares(features, *, mask=None):
    """Dislocator 2 (du2017 §3.5): ``Σ_p F_pc² / (C·H·W)``, ``f32[C]``."""
    return scaled_sum(features * features, mask=mask)


def scaled_sum_abs(features, *, mask=None):
    """Dislocator 3 (du2017 §3.5): ``Σ_p |F_pc| / (C·H·W)``, ``f32[C]``."""
    return scaled_sum(jnp.abs(features), mask=mask)


def dislocator_loss(statistic, target):
    """Mean squared error of two dislocator outputs (as the Gram loss of du2017 §3.3).

    Args:
      statistic: ``f32[...]`` of the generated image.
      target: same shape, of the style image.

    Returns:
      ``f32[]``.
    """
    d = statistic - target
    return jnp.mean(d * d)


STATISTICS = ("mean", "std", "skew", "kurt")


def sample_statistics(features, *, eps=STAT_EPS, mask=None):
    """Sample mean, standard deviation, skewness and kurtosis per channel (du2017 §3.5).

    Args:
      features: ``f32[H, W, C]``.
      eps: added to ``m_2`` in the skewness and kurtosis denominators (module docstring).

    Returns:
      ``f32[4, C]``, rows in the order of :data:`STATISTICS`.
    """
    mu, m2, m3, m4 = central_moments(features, 4, mask=mask)
    v = m2 + eps
    return jnp.stack([mu, safe_sqrt(m2), m3 / (v * jnp.sqrt(v)), m4 / (v * v)])


def statistics_loss(features, target, weights, *, mask=None):
    """``Σ_s w_s · mean_c (S_s(F)_c − S_s(F^s)_c)²`` over the four sample statistics.

    Args:
      features: ``f32[H, W, C]``.
      target: ``f32[4, C]`` from :func:`sample_statistics` of the style features.
      weights: ``f32[4]`` per statistic, order :data:`STATISTICS` (traceable; a one-hot
        vector gives one statistic alone).

    Returns:
      ``f32[]``.
    """
    d = sample_statistics(features, mask=mask) - target
    return jnp.sum(jnp.asarray(weights) * jnp.mean(d * d, axis=1))


# --------------------------------------------------------------------- the registered methods


@register_style_loss("bn", target=bn_target, scale=9.6e4,
                     reference="li2017 eq. 11-12",
                     paper_factor=lambda n, m: m / 2.0, paper_scale=500.0)
def bn(f, t, *, hyper, key, mask=None):
    return bn_statistics_loss(f, t, mask=mask)


@register_style_loss("moments", target=moment_target, scale=1.4e-4,
                     hyper={**{f"w{i}": 1.0 for i in range(1, MAX_MOMENT + 1)},
                            "literal_psi": 0.0},
                     reference="stylerep eq. 1.4-1.5, N = 4, weights w1..w4; ψ with |M_1| "
                               "unless literal_psi = 1 (our guess)")
def moments(f, t, *, hyper, key, mask=None):
    w = jnp.stack([jnp.asarray(hyper[f"w{i}"]) for i in range(1, t.moments.shape[0] + 1)])
    return moment_loss(f, t, w, mask=mask, literal_psi=hyper["literal_psi"])


@register_style_loss("channel-mmd", target=lambda features: features, scale=3.5e8,
                     hyper={"sigma2": 0.0}, permutation_invariant=False,
                     reference="stylerep eq. 1.6 (mean over pairs)")
def channel_mmd(f, t, *, hyper, key, mask=None):
    return channel_mmd_loss(f, t, sigma2=hyper["sigma2"], mask=mask)


# ------------------------------------------------------------------------ dislocators


def _register_dislocator(name, statistic, scale, reference):
    @register_style_loss(name, target=statistic, scale=scale, reference=reference)
    def dislocator(f, t, *, hyper, key, mask=None):
        return dislocator_loss(statistic(f, mask=mask), t)
    return dislocator


mean = _register_dislocator("mean", scaled_sum, 3.3e10,
                            "du2017 §3.5 dislocator 1 (scaled sum)")
mean_sq = _register_dislocator("mean-sq", scaled_sum_squares, 3.8e3,
                               "du2017 §3.5 dislocator 2 (scaled sum of squares)")
mean_abs = _register_dislocator("mean-abs", scaled_sum_abs, 3.3e10,
                                "du2017 §3.5 dislocator 3 (scaled sum of |F|)")


@register_style_loss("stats", target=sample_statistics, scale=650.0,
                     hyper={s: 1.0 for s in STATISTICS},
                     reference="du2017 §3.5 sample mean, std, skewness, kurtosis")
def stats(f, t, *, hyper, key, mask=None):
    w = jnp.stack([jnp.asarray(hyper[s]) for s in STATISTICS])
    return statistics_loss(f, t, w, mask=mask)


def _register_one_statistic(name, scale):
    onehot = np.asarray([float(s == name) for s in STATISTICS], np.float32)

    @register_style_loss(f"stats-{name}", target=sample_statistics, scale=scale,
                         reference=f"du2017 §3.5 sample {name} alone")
    def one_statistic(f, t, *, hyper, key, mask=None):
        return statistics_loss(f, t, onehot, mask=mask)
    return one_statistic


stats_mean, stats_std, stats_skew, stats_kurt = (
    _register_one_statistic(name, scale)
    for name, scale in zip(STATISTICS, (1.6e5, 1.7e5, 1.1e7, 650.0)))
