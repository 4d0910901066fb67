"""Style as matched local features: STROTSS's relaxed EMD and Li & Wand's MRF patch loss.

Each position of ``F: f32[H, W, C]`` is one feature vector (``M = H·W``; the style gives
``M_s``).  Hyper-parameters in brackets, traced.

* ``relaxed-emd`` [remd, moment, palette] (Kolkin, Salavon & Shakhnarovich 2019, STROTSS,
  eq. 2-6).
  ``N = 1024`` output positions ``x_i`` and ``N`` style rows ``y_j`` are drawn with ``key``
  (uniformly, without replacement, by Gumbel top-k; all when there are at most ``N``), the cost
  is the cosine distance ``C_ij = 1 − x_i·y_j / (‖x_i‖ ‖y_j‖)``, and

      ℓ_r = max(1/N Σ_i min_j C_ij, 1/N_s Σ_j min_i C_ij)
      ℓ_m = 1/C ‖μ − μ_s‖₁ + 1/C² ‖Σ − Σ_s‖₁                                   (eq. 5)
      L   = w_r ℓ_r + w_m ℓ_m      (w_r = ``remd``, w_m = ``moment``, both 1 by default).

  ``μ, Σ`` are the mean and population covariance of the features divided by
  :data:`FEATURE_UNIT` (58: this VGG's Caffe-scaled features in the ImageNet-normalised
  units of STROTSS's network, whose weights 1 balance the terms).  As the released code
  (github.com/nkolkin13/STROTSS, ``contextual_loss.py``: ``remd_loss``, ``moment_loss``,
  whose ``abs(·).mean()`` is the ``1/C``, ``1/C²``) with these differences: (a) the paper
  concatenates the (bilinearly sampled) hypercolumn of all layers and takes one cosine
  distance over it; the registry sees one layer at a time, so here each layer has its own
  cost matrix and the layers' losses are summed with the layer weights; (b) the moments are
  taken over *all* positions of ``F`` (and of the style), not over the sample: exact, cheap
  (``M·C²``) and free of sampling noise; (c) the palette term ``ℓ_p`` (the relaxed EMD of
  the pixel colours, :func:`palette_loss`) acts on the image, which the per-layer contract
  ``loss(F, T)`` cannot see: the objective adds it to this method's term once per style
  image, weighted ``w_p · Σ_l w_l`` (``w_p`` = ``palette``, 1 by default: one layer's
  relaxed EMD per layer, as the paper weighs it against its single hypercolumn cost at
  ``α = 1``; :mod:`nstjax.objective.terms`); (d) the content term (self-similarity) is a
  content loss (``--content-loss self-similarity``), not here.  Norms use ``max(‖x‖², 1e-12)`` so that an
  all-zero feature vector (dead ReLUs) has a finite gradient (the released code divides by
  0 there).

  Balance of the terms.  ``ℓ_r`` is a cosine distance (in [0, 2], scale-free) while ``ℓ_m``
  grows with the square of the features.  In Caffe units (0-255 pixels) ``ℓ_m`` was 1e3-1e5
  times ``ℓ_r`` and drowned it; in STROTSS's units their gradients are within about 30× of
  each other at every layer (tubingen/starry_night at 256 px, noise start:
  ``benchmarks/style_scales.py`` and docs/methods.md), as in the paper.
* ``mrf`` (Li & Wand 2016, eq. 2-3).  ``Ψ_i(F)`` the ``3×3×C`` patches of ``F`` (stride 1,
  'VALID', flattened in (dy, dx, c) order), ``Ψ_j(F_s)`` the style's; each output patch is
  matched to the style patch of highest normalised cross-correlation,

      NN(i) = argmax_j Ψ_i(F)·Ψ_j(F_s) / (‖Ψ_i(F)‖ ‖Ψ_j(F_s)‖)                  (eq. 3)

  held fixed (``stop_gradient``: the matching carries no gradient, as in the paper where
  it is recomputed at every iteration), and

      L = 1/(P · 9C) Σ_i ‖Ψ_i(F) − Ψ_NN(i)(F_s)‖²                             (eq. 2)

  ``P`` the number of output patches: the paper's sum, divided by the number of patches and
  the patch size so that the value does not grow with the image (the λ absorbs the
  constant).  A map smaller than 3 in a dimension (relu5_1 of small images) is zero-padded
  to 3 there (centred: the padded patch's centre is a real position), so that it still has
  a patch.  Not done: the paper's rotated and scaled copies of the style patches.

Memory.  ``relaxed-emd``'s cost matrix is at most ``1024 × 1024``.  ``mrf``'s style patches
are capped at 4096 (below); the output's patches are all used, matched in blocks of 1024
rows (``lax.map``), so the score matrix held at once is ``1024 × 4096`` whatever the image
size.  The compute is ``P · 4096 · 9C`` multiply-adds per evaluation, large at relu1_1 of a
big image (2.6e5 patches at 512 px: ~6e14 flops): the paper uses relu3_1 and relu4_1.

Targets.  ``relaxed-emd``: the style's rows ``f32[M_t, C]``, ``M_t = min(M_s, 4096)``, a
fixed regular subsample (rows ``⌊k·M_s/M_t⌋``, ``k = 0..M_t−1``) when larger, with the mean
and covariance of *all* ``M_s`` rows.  ``mrf``: the style's patches, likewise at most 4096
(patches ``⌊k·P_s/K⌋``), with their unit-normalised copies for the matching.

Position weights (``mask``, ``w_p ≥ 0``):

* relaxed-emd: the sample is drawn uniformly among the positions of positive weight (all
  positions when there are at most ``N``); then ``1/N Σ_i`` becomes ``Σ_i w_i · / Σ_i w_i``,
  ``min_i`` runs over the sampled positions of positive weight only, and the moments are
  weighted (``Σ_p w_p (x_p − μ)(x_p − μ)ᵀ / Σ_p w_p``).  A zero-weight position takes no
  part (zero gradient), a 0/1 mask is the method on the selected positions, ones are the
  plain method and the mask's overall scale does not matter.
* mrf: a patch weighs its centre's weight, and a patch that covers a zero-weight position
  weighs 0 (otherwise a position outside a region would get gradient from the patch centred
  next to it, and the registry's contract is that zero-weight positions take no part):
  ``L = Σ_i v_i ‖·‖² / (9C Σ_i v_i)``, ``v_i = w_centre(i) · 1[min_{p ∈ patch i} w_p > 0]``.
  The matching ignores the weights.

Default scales λ, measured by ``benchmarks/style_scales.py --methods
relaxed-emd,mrf`` on the real VGG19 weights as the built-in ones (tubingen.jpg content,
starry_night.jpg style, long edge 256, relu1_1..relu5_1 weight 1, content relu4_2 ``½Σ``,
uniform noise in [0, 1] seed 0, key 0; CPU, float32; 2026-11-27), λ = ‖∇_x L_content‖ /
‖∇_x Σ_l L^l‖ rounded to 2 significant digits, registered from the noise column:

    method        ‖∇ style‖ noise   λ noise   λ content + N(0, 0.1²)
    relaxed-emd   9.609e-1          6.3e9     2.5e9
    mrf           3.757e4           1.6e5     1.3e5

(‖∇ content‖ = 6.044e9 at the noise start; each method took 12-18 s.)  The relaxed-EMD value
is for key 0's samples (at 256 px, relu1_1 to relu3_1 have more than 1024 positions) and
leaves out the palette term, which the objective adds.

References:
  N. Kolkin, J. Salavon, G. Shakhnarovich, "Style Transfer by Relaxed Optimal Transport and
  Self-Similarity", CVPR 2019 (arXiv:1904.12785); code github.com/nkolkin13/STROTSS.
  C. Li, M. Wand, "Combining Markov Random Fields and Convolutional Neural Networks for Image
  Synthesis", CVPR 2016 (arXiv:1601.04589).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from nstjax.losses.core import position_weights
from nstjax.losses.feature_stats import mean_and_covariance
from nstjax.losses.registry import register_builtin as register_style_loss

REMD_SAMPLES = 1024          # N: positions drawn per evaluation, on each side
TARGET_ROWS = 4096           # at most this many style rows / patches in a target
MRF_BLOCK = 1024             # output patches matched at once
_NORM_EPS = 1e-12            # floor on ‖x‖² in the cosines
_HIGHEST = jax.lax.Precision.HIGHEST
# This library's VGG takes Caffe-scaled pixels (0-255 less the mean); STROTSS's torchvision
# VGG takes ImageNet-normalised ones, (x − mean)/std with std ≈ 0.226 on [0, 1]: 255 × 0.226
# ≈ 58 times smaller inputs, so (ReLU and convolutions being homogeneous up to their biases)
# about 58 times smaller features.  The moment term is taken in those units.
FEATURE_UNIT = 58.0


def _rows(features):
    return jnp.reshape(features, (-1, features.shape[-1]))


def _regular_subsample(rows, count: int):
    """Rows ``⌊k·M/K⌋`` (``K = min(M, count)``) of ``rows: f32[M, ...]``: all when ``M ≤
    count``, else a fixed, evenly spread subset."""
    m = rows.shape[0]
    if m <= count:
        return rows
    return rows[(jnp.arange(count) * m) // count]


def _unit(x):
    """Rows of ``x`` divided by their norm (floored: a zero row stays 0, finite gradient)."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), _NORM_EPS))


# ------------------------------------------------------------------------------ relaxed EMD


class RemdTarget(NamedTuple):
    """The style for ``relaxed-emd``: ``rows: f32[M_t, C]`` (≤ 4096), and the ``mean: f32[C]``
    and ``cov: f32[C, C]`` of all its positions."""

    rows: jax.Array
    mean: jax.Array
    cov: jax.Array


def remd_target(features):
    """:class:`RemdTarget` of the style features."""
    mu, cov = mean_and_covariance(features)
    return RemdTarget(_regular_subsample(_rows(features), TARGET_ROWS), mu, cov)


def sample_positions(key, m: int, count: int, weights=None):
    """``count`` distinct indices in ``[0, m)`` drawn uniformly among the positions of positive
    weight (Gumbel top-k), or ``None`` (all positions) when ``m ≤ count``.  With fewer than
    ``count`` positive weights the rest are zero-weight positions (they count 0)."""
    if m <= count:
        return None
    g = jax.random.gumbel(key, (m,))
    if weights is not None:
        g = jnp.where(weights > 0, g, -jnp.inf)
    return jax.lax.top_k(g, count)[1]


def relaxed_emd_terms(features, target: RemdTarget, key, *, mask=None,
                      samples: int = REMD_SAMPLES):
    """``(ℓ_r, ℓ_m)`` of STROTSS (module docstring) for one layer.

    Args:
      features: ``f32[H, W, C]``.
      target: from :func:`remd_target`.
      key: PRNG key for the samples (unused when both sides have at most ``samples`` rows).
      mask: optional ``f32[H, W]`` position weights.
      samples: ``N`` (static).

    Returns:
      ``(f32[], f32[])``.
    """
    x = _rows(features)
    w = position_weights(features, mask)
    k_out, k_sty = jax.random.split(key)
    ix = sample_positions(k_out, x.shape[0], samples, w)
    xs = x if ix is None else x[ix]
    ws = None if w is None else (w if ix is None else w[ix])
    iy = sample_positions(k_sty, target.rows.shape[0], samples)
    ys = target.rows if iy is None else target.rows[iy]

    remd = _relaxed_emd(1.0 - jnp.matmul(_unit(xs), _unit(ys).T, precision=_HIGHEST), ws)

    mu, cov = mean_and_covariance(features, mask=mask)
    u = FEATURE_UNIT
    moments = (jnp.mean(jnp.abs(mu - target.mean)) / u
               + jnp.mean(jnp.abs(cov - target.cov)) / (u * u))
    return remd, moments


def _relaxed_emd(cost, ws):
    """``max(mean_i min_j C_ij, mean_j min_i C_ij)`` with output weights ``ws`` (or None)."""
    to_style = jnp.min(cost, axis=1)
    if ws is None:
        return jnp.maximum(jnp.mean(to_style), jnp.mean(jnp.min(cost, axis=0)))
    r_out = jnp.sum(ws * to_style) / jnp.sum(ws)
    # min over the output positions that count (every cost here is below 1e3)
    r_sty = jnp.mean(jnp.min(jnp.where(ws[:, None] > 0, cost, 1e3), axis=0))
    return jnp.maximum(r_out, r_sty)


def palette_target(image):
    """The style's pixel colours for :func:`palette_loss`: ``f32[K, 3]`` (K ≤ 4096, a fixed
    regular subsample), centred on mid-grey."""
    return _regular_subsample(_rows(image) - 0.5, TARGET_ROWS)


def palette_loss(image, target, key, *, mask=None, samples: int = REMD_SAMPLES):
    """STROTSS's palette term ``ℓ_p``: the relaxed EMD between ``N`` sampled pixel colours of
    ``image`` (``f32[H, W, 3]`` in [0, 1], centred on grey) and ``N`` of ``target``
    (:func:`palette_target`), with the cost of the released code for 3-channel inputs,
    cosine distance plus Euclidean distance ``√(‖x − y‖²/3)`` (``‖x − y‖²/3`` clipped to
    [1e-5, 1e5]).  STROTSS first turns the pixels by an orthonormal RGB→YUV matrix, which
    changes neither cost, so it is left out.  ``mask``: optional ``f32[H, W]`` pixel weights."""
    x = _rows(image) - 0.5
    w = None if mask is None else jnp.reshape(mask, (-1,))
    k_out, k_sty = jax.random.split(key)
    ix = sample_positions(k_out, x.shape[0], samples, w)
    xs = x if ix is None else x[ix]
    ws = None if w is None else (w if ix is None else w[ix])
    iy = sample_positions(k_sty, target.shape[0], samples)
    ys = target if iy is None else target[iy]
    cosine = 1.0 - jnp.matmul(_unit(xs), _unit(ys).T, precision=_HIGHEST)
    sq = (jnp.sum(xs * xs, 1)[:, None] + jnp.sum(ys * ys, 1)[None, :]
          - 2.0 * jnp.matmul(xs, ys.T, precision=_HIGHEST))
    return _relaxed_emd(cosine + jnp.sqrt(jnp.clip(sq / 3.0, 1e-5, 1e5)), ws)


@register_style_loss("relaxed-emd", target=remd_target, scale=6.3e9, uses_key=True,
                     hyper={"remd": 1.0, "moment": 1.0, "palette": 1.0},
                     reference="Kolkin et al. CVPR 2019 (STROTSS) eq. 2-5: relaxed EMD with "
                               "cosine cost on ≤1024 sampled positions per side + moment term "
                               "ℓ_m + palette term ℓ_p on the pixels (added by the objective)")
def relaxed_emd(f, t, *, hyper, key, mask=None):
    remd, moments = relaxed_emd_terms(f, t, key, mask=mask)
    return hyper["remd"] * remd + hyper["moment"] * moments


# ------------------------------------------------------------------------------------ MRF


class MrfTarget(NamedTuple):
    """The style's ``3×3`` patches ``patches: f32[K, 9C]`` (K ≤ 4096) and ``unit``, the same
    divided by their norms (for the normalised cross-correlation)."""

    patches: jax.Array
    unit: jax.Array


def _pad_to_3(a, mode):
    """Pad the two leading axes of ``a`` to at least 3, centred (``(3 − n) // 2`` before)."""
    pads = [((3 - n) // 2, 3 - n - (3 - n) // 2) if n < 3 else (0, 0) for n in a.shape[:2]]
    if all(p == (0, 0) for p in pads):
        return a
    return jnp.pad(a, pads + [(0, 0)] * (a.ndim - 2), mode=mode)


def extract_patches(features):
    """``Ψ(F)``: every ``3×3`` patch (stride 1, 'VALID', after :func:`_pad_to_3`), flattened
    in (dy, dx, c) order: ``f32[(H−2)(W−2), 9C]``, patches in raster order of their centres."""
    f = _pad_to_3(features, "constant")
    h, w = f.shape[0] - 2, f.shape[1] - 2
    views = [f[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    return jnp.reshape(jnp.stack(views, axis=2), (h * w, -1))


def patch_weights(mask):
    """``v_i`` of each patch: its centre's weight, 0 if it covers a zero-weight position."""
    m = _pad_to_3(mask, "edge")
    h, w = m.shape[0] - 2, m.shape[1] - 2
    win = jnp.stack([m[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=-1)
    win = jnp.reshape(win, (h * w, 9))
    return jnp.where(jnp.all(win > 0, axis=1), win[:, 4], 0.0)


def mrf_target(features):
    """:class:`MrfTarget` of the style features."""
    p = _regular_subsample(extract_patches(features), TARGET_ROWS)
    return MrfTarget(p, _unit(p))


def nearest_patches(patches, target: MrfTarget, *, block: int = MRF_BLOCK):
    """``NN(i)`` (eq. 3) for every row of ``patches``, in blocks of ``block`` rows."""
    q = _unit(patches)
    p = q.shape[0]

    def match(b):
        return jnp.argmax(jnp.matmul(b, target.unit.T, precision=_HIGHEST), axis=1)

    if p <= block:
        return match(q)
    nb = -(-p // block)
    q = jnp.pad(q, ((0, nb * block - p), (0, 0)))
    return jnp.reshape(jax.lax.map(match, jnp.reshape(q, (nb, block, -1))), (-1,))[:p]


@register_style_loss("mrf", target=mrf_target, scale=1.6e5, permutation_invariant=False,
                     reference="Li & Wand CVPR 2016 eq. 2-3: 3×3 patches, nearest style patch by "
                               "normalised cross-correlation (held fixed), mean squared "
                               "difference over patches and patch entries")
def mrf(f, t, *, hyper, key, mask=None):
    p = extract_patches(f)
    nn = jax.lax.stop_gradient(t.patches[nearest_patches(jax.lax.stop_gradient(p), t)])
    d = jnp.mean((p - nn) ** 2, axis=1)
    if mask is None:
        return jnp.mean(d)
    if mask.shape != f.shape[:-1]:
        raise ValueError(f"mask of shape {mask.shape} for features of shape {f.shape}")
    v = patch_weights(mask.astype(f.dtype))
    return jnp.sum(v * d) / jnp.sum(v)
