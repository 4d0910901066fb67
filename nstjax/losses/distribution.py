"""Style as a distribution of features: sliced Wasserstein, Gaussian W2, histograms, CMD.

Each position of ``F: f32[H, W, C]`` is one sample of ``C`` dimensions (``M = H·W``
samples; the style image gives ``M_s``).  Hyper-parameters in brackets, all traced:

* ``sliced-wasserstein`` (Heitz et al. 2021, their loss ``Σ_l E_V[L_SW1D]``): ``C`` random
  unit directions ``v_j`` drawn from ``key`` (Gaussian columns normalised to length 1,
  :func:`sliced_directions`), and

      L = 1/(C·M) Σ_j Σ_k (sort(F v_j)_k − Q_j((k − ½)/M))²,

  ``Q_j`` the quantile function of the style's projections ``S v_j`` (below).  At
  ``M = M_s`` it is Heitz's mean squared difference of the two sorted projections.
* ``gaussian-w2``: the squared 2-Wasserstein distance between the Gaussians fitted to the
  two feature distributions (Dowson & Landau 1982; Givens & Shortt 1984), divided by ``C``:

      L = (‖μ − μ_s‖² + tr Σ + tr Σ_s − 2 tr (Σ_s^½ Σ Σ_s^½)^½) / C,

  as crowsonkb/style-transfer-pytorch's ``StyleLossW2`` (whose ``mean`` over channels is
  the ``1/C``; it adds ``1e-4·I`` to both covariances, we do not).
* ``histogram`` (Risser et al. 2017, ``L = Σ_l γ_l ‖O_l − R(O_l)‖²_F``): per channel,
  ``R(F)`` is ``F`` histogram-matched to the style (exactly, by sorting: the ``k``-th
  smallest value of a channel becomes the style's quantile ``Q_c((k − ½)/M)``), held
  constant, and

      L = 1/(C·M) Σ_p Σ_c (F_pc − sg(R(F))_pc)².

  ``R`` depends on ``F`` only through ranks, so ``stop_gradient`` leaves the gradient that of
  the value, and the value is the sliced loss with the channel axes as directions.
* ``cmd`` [w1..w5] (Kalischek et al. 2021; the CMD of Zellinger et al. 2017), on the
  sigmoid of the features, ``X = σ(F) ∈ [0, 1]``, so the CMD bounds ``[a, b] = [0, 1]`` and
  its ``1/|b − a|^k`` factors are 1:

      L = w_1 ‖E(X) − E(X_s)‖₂ + Σ_{k=2}^{5} w_k ‖c_k(X) − c_k(X_s)‖₂,

  ``c_k`` the per-channel central moments ``1/M Σ_p (X_pc − E X_c)^k`` and ``‖·‖₂`` the
  Euclidean norm over channels (unsquared).  ``K = 5`` and weights 1, as the paper's
  released code (github.com/D1noFuzi/cmd_styletransfer, ``losses.py``); ``w_k = 0`` turns an
  order off inside one compiled function.  That code applies the sigmoid to the *conv*
  outputs (pre-ReLU); the registry hands us the ``relu`` features, and
  ``σ(relu(x)) = max(σ(x), ½)``: the same bounded features with negative pre-activations
  clipped at ½.  It also weighs layer ``l`` by ``1e3/C_l²``; pass that as
  ``style_layer_weights`` to reproduce it.

Quantile functions (sliced and histogram).  The style's sorted values ``y_1 ≤ … ≤ y_{M_s}``
sit at levels ``(j − ½)/M_s``; ``Q(u)`` interpolates linearly between them and is constant
beyond the first and last (``np.interp``).  The output's ``k``-th smallest value is compared
with ``Q((k − ½)/M)``, which is ``y_k`` exactly when ``M = M_s`` (that case skips the
interpolation).

Position weights (``mask``, ``w_p ≥ 0``, ``W = Σ_p w_p``):

* sliced, histogram: the weighted empirical distribution of the output.  Sorted values
  ``x_(k)`` with weights ``w_(k)`` sit at the mid-levels ``u_k = (Σ_{i≤k} w_(i) − w_(k)/2)/W``
  and ``L = 1/(K·W) Σ_k w_(k) (x_(k) − Q(u_k))²`` per direction/channel (``K`` of them).
  A zero-weight position adds nothing to any level and nothing to the loss (zero gradient),
  so a 0/1 mask is the method on the selected positions alone; ones give the plain method;
  the value ignores the mask's overall scale.
* gaussian-w2: weighted mean and population covariance ``Σ_p w_p (x_p − μ)(x_p − μ)ᵀ / W``;
* cmd: weighted mean and central moments (:func:`nstjax.losses.statistics.central_moments`).

The style side is never weighted (its target is computed once, unmasked, as every method's).

Matrix square roots (gaussian-w2).  ``Σ_s^½`` is computed once (in the target) and
``tr (Σ_s^½ Σ Σ_s^½)^½ = Σ_i f(λ_i)`` from ``eigh`` of the symmetric PSD product, with
``f(λ) = √λ`` for ``λ > τ`` and 0 below, ``τ = C·ε·max(λ_max, 0)`` (ε the dtype's machine
epsilon: eigenvalues below it are rounding, e.g. dead channels, ``M < C`` or repeated
eigenvalues at 0).  Its derivative is the spectral-function gradient ``U diag(f'(λ)) Uᵀ``
(Lewis 1996), given as a ``custom_jvp`` (:func:`trace_sqrtm`).  It uses eigenvalues only,
so it is finite when eigenvalues repeat (differentiating ``tr(U √Λ Uᵀ)`` through the
eigenvectors divides by ``λ_i − λ_j``), and it is 0 along the directions below ``τ``,
where autodiff of ``√max(λ, 0)`` gives NaN (``∞·0``) and the true function has a ``|·|``
kink (central finite differences also give 0 there).  In float32, eigenvalues of the
product below ``C·1.2e-7`` of its largest count as 0 in the cross term while
``tr Σ + tr Σ_s`` still counts them, so at identity the loss is small (of the order of the
variance along those directions) but not exactly 0.  The covariance products use
``Precision.HIGHEST`` (no TF32 on GPUs: the value is a difference of traces).

Default scales λ, measured by ``benchmarks/style_scales.py --methods
sliced-wasserstein,gaussian-w2,histogram,cmd`` on the real VGG19 weights exactly as the
built-in ones (:mod:`nstjax.losses.builtin`: tubingen.jpg content, starry_night.jpg style,
long edge 256, relu1_1..relu5_1 weight 1, content relu4_2 ``½Σ``, uniform noise in [0, 1]
seed 0, key 0; CPU, float32; 2026-11-27), λ = ‖∇_x L_content‖/‖∇_x Σ_l L^l‖ rounded to 2 significant
digits, registered from the noise column (the content-plus-noise start for comparison):

    method              ‖∇ style‖ noise   λ noise   λ content + N(0, 0.1²)
    sliced-wasserstein  6.406e4           9.4e4     1.5e5
    gaussian-w2         5.703e4           1.1e5     1.2e5
    histogram           6.322e4           9.6e4     1.3e5
    cmd                 1.103             5.5e9     4.1e9

(‖∇ content‖ = 6.044e9 at the noise start.)  The sliced value is for key 0's directions;
keys 0-5 give 9.4e4 to 1.0e5.  CMD's λ is large because σ(F) ∈ [½, 1) squeezes the
VGG activations (hundreds) into a band where ``σ'`` is at most ¼ and mostly ~0.

References:
  E. Heitz, K. Vanhoey, T. Chambon, L. Belcour, "A Sliced Wasserstein Loss for Neural
  Texture Synthesis", CVPR 2021 (arXiv:2006.07229).
  D. C. Dowson, B. V. Landau, "The Fréchet distance between multivariate normal
  distributions", J. Multivariate Anal. 1982 (the Gaussian W2 closed form).
  E. Risser, P. Wilmot, C. Barnes, "Stable and Controllable Neural Texture Synthesis and
  Style Transfer Using Histogram Losses", arXiv:1701.08893 (2017) (histogram loss).
  N. Kalischek, J. D. Wegner, K. Schindler, "In the light of feature distributions: moment
  matching for Neural Style Transfer", CVPR 2021 (arXiv:2103.07208); W. Zellinger et al.,
  "Central Moment Discrepancy (CMD) for Domain-Invariant Representation Learning", ICLR 2017
  (the CMD_K definition).
  A. S. Lewis, "Derivatives of spectral functions", Math. Oper. Res. 1996 (gradient of
  ``Σ f(λ_i(A))``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from nstjax.losses.core import position_weights
from nstjax.losses.feature_stats import central_moments, mean_and_covariance, safe_sqrt
from nstjax.losses.registry import register_builtin as register_style_loss

CMD_ORDER = 5
_HIGHEST = jax.lax.Precision.HIGHEST


def _rows(features):
    return jnp.reshape(features, (-1, features.shape[-1]))


# ----------------------------------------------------------------------- quantile matching


def style_quantiles(y_sorted, levels):
    """The style's quantile function at ``levels``, column by column.

    Args:
      y_sorted: ``f32[M_s, K]``, each column sorted ascending; value ``j`` (0-based) sits at
        level ``(j + ½)/M_s``.
      levels: ``f32[M]`` (the same for every column) or ``f32[M, K]``, in [0, 1].

    Returns:
      ``f32[M, K]``: linear interpolation between neighbouring levels, the end values beyond
      them (as ``np.interp``).
    """
    ms = y_sorted.shape[0]
    t = levels * ms - 0.5
    j0f = jnp.clip(jnp.floor(t), 0, ms - 1)
    frac = jnp.clip(t - j0f, 0.0, 1.0)
    j0 = j0f.astype(jnp.int32)
    j1 = jnp.minimum(j0 + 1, ms - 1)
    if levels.ndim == 1:
        y0, y1, frac = y_sorted[j0], y_sorted[j1], frac[:, None]
    else:
        y0 = jnp.take_along_axis(y_sorted, j0, axis=0)
        y1 = jnp.take_along_axis(y_sorted, j1, axis=0)
    return y0 + frac * (y1 - y0)


def _matched(x, y_sorted, w):
    """Sort the columns of ``x: f32[M, K]`` and pair them with the style's quantiles.

    Returns ``(x sorted, quantiles, weights sorted or None, permutation)``, all ``[M, K]``;
    the permutation gives the original row of each sorted entry.
    """
    m = x.shape[0]
    iota = jax.lax.broadcasted_iota(jnp.int32, x.shape, 0)
    if w is None:
        xs, perm = jax.lax.sort((x, iota), dimension=0, num_keys=1)
        if m == y_sorted.shape[0]:
            return xs, y_sorted, None, perm
        levels = (jnp.arange(m, dtype=x.dtype) + 0.5) / m
        return xs, style_quantiles(y_sorted, levels), None, perm
    xs, ws, perm = jax.lax.sort((x, jnp.broadcast_to(w[:, None], x.shape), iota),
                                dimension=0, num_keys=1)
    cum = jnp.cumsum(ws, axis=0)
    levels = (cum - 0.5 * ws) / jnp.sum(w)
    return xs, style_quantiles(y_sorted, levels), ws, perm


def quantile_loss(x, y_sorted, *, weights=None):
    """Mean squared difference between sorted columns and the style's quantiles.

    Args:
      x: ``f32[M, K]`` samples (rows) of ``K`` one-dimensional distributions.
      y_sorted: ``f32[M_s, K]``, the style's, each column sorted.
      weights: optional ``f32[M]`` position weights (module docstring).

    Returns:
      ``f32[]``: ``1/(K·W) Σ_c Σ_k w_(k) (x_(k)c − Q_c(u_k))²`` (``w = 1``, ``W = M``
      without weights).
    """
    xs, q, ws, _ = _matched(x, y_sorted, weights)
    d = xs - q
    if ws is None:
        return jnp.mean(d * d)
    return jnp.sum(ws * d * d) / (jnp.sum(weights) * x.shape[1])


# ------------------------------------------------------------------------ sliced Wasserstein


def sliced_directions(key, channels: int, *, dtype=jnp.float32):
    """``C`` random unit directions, the columns of ``f32[C, C]`` (Gaussian, normalised)."""
    v = jax.random.normal(key, (channels, channels), dtype)
    return v / jnp.linalg.norm(v, axis=0, keepdims=True)


def sliced_target(features):
    """The style's samples, ``f32[M_s, C]`` (projected anew for every key)."""
    return _rows(features)


@register_style_loss("sliced-wasserstein", target=sliced_target, scale=9.4e4, uses_key=True,
                     reference="Heitz et al. CVPR 2021, sliced Wasserstein loss (C random "
                               "directions, quantile matching for M ≠ M_s)")
def sliced_wasserstein(f, t, *, hyper, key, mask=None):
    x = _rows(f)
    v = jax.lax.stop_gradient(sliced_directions(key, x.shape[1], dtype=x.dtype))
    y_sorted = jnp.sort(t @ v, axis=0)
    return quantile_loss(x @ v, y_sorted, weights=position_weights(f, mask))


# ------------------------------------------------------------------------------ histogram


def histogram_target(features):
    """Each channel of the style's features sorted over positions, ``f32[M_s, C]``."""
    return jnp.sort(_rows(features), axis=0)


def histogram_match(features, target, *, mask=None):
    """``R(F)``: each channel of ``F`` remapped to the style's distribution (exact matching).

    Args:
      features: ``f32[H, W, C]``.
      target: from :func:`histogram_target`.
      mask: optional ``f32[H, W]``: weighted quantile levels (module docstring).

    Returns:
      ``f32[H, W, C]``: the value of rank ``k`` in a channel replaced by ``Q_c(u_k)``.
    """
    x = _rows(features)
    _, q, _, perm = _matched(x, target, position_weights(features, mask))
    cols = jnp.arange(x.shape[1])[None, :]
    return jnp.zeros_like(x).at[perm, cols].set(q).reshape(features.shape)


@register_style_loss("histogram", target=histogram_target, scale=9.6e4,
                     reference="Risser et al. 2017 histogram loss ‖F − R(F)‖² (exact sort-based "
                               "matching, mean over positions and channels)")
def histogram(f, t, *, hyper, key, mask=None):
    r = jax.lax.stop_gradient(histogram_match(f, t, mask=mask))
    d = _rows(f - r)
    w = position_weights(f, mask)
    if w is None:
        return jnp.mean(d * d)
    return jnp.sum(w[:, None] * d * d) / (jnp.sum(w) * d.shape[1])


# --------------------------------------------------------------------------- Gaussian W2


class GaussianTarget(NamedTuple):
    """The style's Gaussian: ``mean: f32[C]``, ``cov: f32[C, C]``, ``cov_sqrt = cov^½``."""

    mean: jax.Array
    cov: jax.Array
    cov_sqrt: jax.Array


@jax.custom_batching.custom_vmap
def _eigh(a):
    lam, u = jnp.linalg.eigh(a)
    return lam, u


@_eigh.def_vmap
def _eigh_batched(axis_size, in_batched, a):
    """Under ``vmap`` (sweep members), one ``eigh`` after another: on the CPU backend,
    several batched ``eigh`` in one program (one per style layer) can wait on each other
    for the same threads and never return."""
    del axis_size
    if not in_batched[0]:
        return _eigh(a), (False, False)
    lam, u = jax.lax.map(lambda m: tuple(jnp.linalg.eigh(m)), a)
    return (lam, u), (True, True)


def _psd_spectrum(a):
    """``eigh`` of the symmetric part of ``a`` and the mask of eigenvalues above rounding."""
    lam, u = _eigh(0.5 * (a + a.T))
    tol = a.shape[-1] * jnp.finfo(a.dtype).eps * jnp.maximum(jnp.max(lam), 0.0)
    return lam, u, lam > tol


def psd_sqrtm(a):
    """``a^½`` of a symmetric PSD matrix (eigenvalues at rounding level set to 0)."""
    lam, u, live = _psd_spectrum(a)
    root = jnp.where(live, jnp.sqrt(jnp.where(live, lam, 1.0)), 0.0)
    return jnp.matmul(u * root, u.T, precision=_HIGHEST)


@jax.custom_jvp
def trace_sqrtm(a):
    """``tr a^½ = Σ_i √λ_i`` of a symmetric PSD matrix, with a gradient safe at repeated and
    zero eigenvalues (module docstring)."""
    lam, _, live = _psd_spectrum(a)
    return jnp.sum(jnp.where(live, jnp.sqrt(jnp.where(live, lam, 1.0)), 0.0))


@trace_sqrtm.defjvp
def _trace_sqrtm_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    lam, u, live = _psd_spectrum(a)
    root = jnp.sqrt(jnp.where(live, lam, 1.0))
    value = jnp.sum(jnp.where(live, root, 0.0))
    slope = jnp.where(live, 0.5 / root, 0.0)                     # f'(λ_i)
    # d tr f(A) = tr(U diag(f'(λ)) Uᵀ dA) = Σ_i f'(λ_i) u_iᵀ dA u_i
    diag = jnp.sum(u * jnp.matmul(0.5 * (da + da.T), u, precision=_HIGHEST), axis=0)
    return value, jnp.sum(slope * diag)


def gaussian_target(features):
    """:class:`GaussianTarget` of the style features (its square root computed once)."""
    mu, cov = mean_and_covariance(features)
    return GaussianTarget(mu, cov, psd_sqrtm(cov))


def gaussian_w2(features, target: GaussianTarget, *, mask=None):
    """``(‖μ − μ_s‖² + tr Σ + tr Σ_s − 2 tr (Σ_s^½ Σ Σ_s^½)^½) / C`` (module docstring).

    Args:
      features: ``f32[H, W, C]``.
      target: from :func:`gaussian_target`.
      mask: optional ``f32[H, W]`` position weights (weighted mean and covariance).

    Returns:
      ``f32[]``; ≥ 0 up to rounding (it is not clamped).
    """
    mu, cov = mean_and_covariance(features, mask=mask)
    s = target.cov_sqrt
    cross = trace_sqrtm(jnp.matmul(jnp.matmul(s, cov, precision=_HIGHEST), s,
                                   precision=_HIGHEST))
    d = mu - target.mean
    w2 = jnp.sum(d * d) + jnp.trace(cov) + jnp.trace(target.cov) - 2.0 * cross
    return w2 / features.shape[-1]


@register_style_loss("gaussian-w2", target=gaussian_target, scale=1.1e5,
                     reference="W2 between fitted Gaussians (Dowson & Landau 1982), / C, as "
                               "crowsonkb/style-transfer-pytorch StyleLossW2")
def gaussian_w2_loss(f, t, *, hyper, key, mask=None):
    return gaussian_w2(f, t, mask=mask)


# ----------------------------------------------------------------------------------- CMD


def cmd_target(features, *, mask=None):
    """Mean and central moments 2..5 of ``σ(F)`` per channel, ``f32[5, C]``."""
    return central_moments(jax.nn.sigmoid(features), CMD_ORDER, mask=mask)


@register_style_loss("cmd", target=cmd_target, scale=5.5e9,
                     hyper={f"w{k}": 1.0 for k in range(1, CMD_ORDER + 1)},
                     reference="Kalischek et al. CVPR 2021 (CMD of Zellinger et al. 2017) on "
                               "σ(F), K = 5, [a, b] = [0, 1], weights w1..w5")
def cmd(f, t, *, hyper, key, mask=None):
    d = cmd_target(f, mask=mask) - t
    norms = safe_sqrt(jnp.sum(d * d, axis=1))                  # ‖·‖₂ over channels
    w = jnp.stack([jnp.asarray(hyper[f"w{k}"]) for k in range(1, CMD_ORDER + 1)])
    return jnp.sum(w * norms)
