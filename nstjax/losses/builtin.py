"""The built-in style methods, each registered on its definition.

Hyper-parameters in brackets, all traced:

* ``gram``, ``gram-gamma``, ``gram-hw``, ``gram-chw``: Gram matrices (:mod:`nstjax.losses.core`);
* ``mmd-linear``, ``mmd-poly`` [c], ``mmd-gauss`` [sigma2; ≤ 0 means the data's mean squared
  distance]: MMD² of li2017 eq. 10 (:mod:`nstjax.losses.mmd`);
* ``bn`` (li2017 eq. 11), ``moments`` [w1..w4, literal_psi] (stylerep eq. 1.4-1.5,
  N = 4), ``channel-mmd`` [sigma2] (stylerep eq. 1.6, with a Gaussian kernel and bandwidth
  of our choosing): :mod:`nstjax.losses.statistics`;
* dislocators of du2017 §3.5: ``mean``, ``mean-sq``, ``mean-abs`` (scaled sums),
  ``stats`` [mean, std, skew, kurt weights] and ``stats-mean``, ``stats-std``,
  ``stats-skew``, ``stats-kurt`` (one statistic alone).

Default scales λ, measured by ``benchmarks/style_scales.py`` on the real VGG19 weights
(tubingen.jpg content, starry_night.jpg style, both at long edge 256; style layers
relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 with weight 1 each; content
``content_loss(kind="sum")`` at relu4_2 with weight 1).  At a uniform-noise initialisation
in [0, 1] (seed 0), λ = ‖∇_x L_content‖ / ‖∇_x Σ_l L_style^l‖ (L2 norms of the gradients with
respect to the RGB image), rounded to 2 significant digits, so that γ = 1 puts the style and
content gradients on the same order (li2017 §4).  Starting from the content image plus
N(0, 0.1²) noise instead gives λ between 0.8× (channel-mmd) and 4.6× (stats) these (the
script prints both); the sampled methods used key 0.

The MMD losses of li2017 eq. 10 divide MMD² by a normaliser Z_k^l of the layer and kernel,
which the paper leaves open.  Ours: linear Z = N (a mean over channels of the squared mean
difference); poly Z = 4N², so that ``mmd-poly`` with c = 0 *is* ``gram`` when the two images
have the same size (li2017 eq. 9) and the layers balance as in Gatys; Gaussian Z = 1 (the
kernel is bounded, so the linear-time estimate lies in (−2, 2)).  Poly's c defaults to 0, the paper's choice (§3.2 "we
only use the version with c = 0"; ``--mmd-poly-c`` defaults to 0.0 in its code), for which
``mmd-poly`` equals ``gram`` at equal sizes (its λ, 0.33, was re-measured with c = 0 as
above; with c = 1 it was 0.32).  The paper λ below are not measured: they are the released
code's constants, converted to our content loss.

``Objective(normalization="paper")`` applies the per-layer factors of li2017's released
code (github.com/lyttonhao/Neural-Style-MMD, ``neural-style.py`` ``get_loss``, ``mmd_loss.py``,
``bn_loss.py``).  There each layer's gradient is the kernel's backward times ``grad_scale =
γ·w_k / (N·M)`` (``N·M·N`` for poly; ``γ·w·M`` then ``/N`` for BN); the backward passes are
``½∇(M²·MMD²)`` (linear), ``¼∇(M²·MMD²)`` (poly), ``½∇(Σ_pairs h) = (M/4)∇MMD²_l``
(Gaussian) and ``½∇Σ_c(Δμ² + Δσ²)`` (BN).  In MMD² units the effective per-layer weights
are M/(2N) (linear), M/(4N²) (poly), 1/(4N) (Gaussian) and M/(2N)·Σ_c(Δμ_c² + Δσ_c²)
(BN, i.e. M/2 times eq. 11, which already divides by N), so the factors on our losses are
M/2, M, 1/(4N) and M/2.  The code's ``w_k`` are 2e3, 1e-1, 3e14, 1e3 against a content loss
``Σ(F − P)²``; ours is ``½Σ(F − P)²``, so the paper λ are half those: 1e3, 0.05, 1.5e14, 500.
Its Gaussian kernel is ``exp(−d²/mean d²)`` (γ = 1/mean), the paper's text
``exp(−d²/(2σ²))`` with σ² = mean d²: ``mmd-gauss`` has a ``width`` hyper-parameter (2, the
paper's text, by default) that paper mode sets to 1, the code's (a guess of ours where the
two disagree, named here).  One difference remains: in its BN/MMD fusions
``--multi-weight`` multiplies only the first method's ``w`` (a bug: both products land on
``w_style[0]``).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from nstjax.losses import core as losses
from nstjax.losses import mmd, statistics
from nstjax.losses.registry import register_style_loss as _register

# How every built-in λ was obtained (li2017 §4): the module docstring's measurement.
MEASURED = ("‖∇_x L_content‖/‖∇_x L_style‖ at uniform noise in [0, 1] (seed 0), real VGG19, "
            "tubingen/starry_night at 256 px, relu1_1..relu5_1 weight 1, content relu4_2 "
            "(½Σ), key 0; benchmarks/style_scales.py")
PAPER = ("li2017's released code's constants (github.com/lyttonhao/Neural-Style-MMD), "
         "halved for our ½Σ content loss")
register_style_loss = functools.partial(_register, scale_source=MEASURED,
                                        paper_scale_source=PAPER)


def _identity(features):
    return features


# ------------------------------------------------------------------------------- Gram


@register_style_loss("gram", target=losses.gram_matrix, scale=0.3,
                     reference="mathur2017 eq. 2-4 (1/(4N²M²))")
def gram(f, t, *, hyper, key, mask=None):
    return losses.gram_loss(f, t, mask=mask)


@register_style_loss("gram-gamma", target=losses.gram_matrix, scale=0.075,
                     reference="stylerep eq. 1.2-1.3 (γ = 1/(c²w²h²))")
def gram_gamma(f, t, *, hyper, key, mask=None):
    return losses.gram_loss_gamma(f, t, mask=mask)


@register_style_loss("gram-hw", target=losses.gram_matrix, scale=2.9e-7,
                     reference="Gram / HW, summed squared error")
def gram_hw(f, t, *, hyper, key, mask=None):
    return losses.gram_loss_hw(f, t, mask=mask)


# jcjohnson/neural-style's StyleLoss (neural_style.lua): 100 · mean((G − A)/(C·H·W))² per layer
# against 5 · mean (F − P)² at relu4_2.  Against the mse content loss (CONTENT_UNIT) that is
# λ = 0.2 at β = 100; the default takes a third of it, λ = 0.2/3 (the content three times
# heavier), because the default's coarse-to-fine schedule runs 40 iterations at the full size
# where the classic tool runs 500 (benchmarks/classic_look.py).
CLASSIC_CHW_SCALE = 0.2 / 3.0 * (512.0 * 768.0) / 2.0
CLASSIC_SOURCE = ("set, not measured: α = 1, β = 100 is jcjohnson/neural-style's default "
                  "balance (style 100, content 5) with the content 3× heavier; "
                  "benchmarks/classic_look.py")


@register_style_loss("gram-chw", target=losses.gram_matrix, scale=CLASSIC_CHW_SCALE,
                     scale_source=CLASSIC_SOURCE,
                     reference="Gram / CHW, mean squared error (jcjohnson/neural-style's "
                     "StyleLoss; the default style method)")
def gram_chw(f, t, *, hyper, key, mask=None):
    return losses.gram_loss_chw(f, t, mask=mask)


# -------------------------------------------------------------------------------- MMD


@register_style_loss("mmd-linear", target=mmd.linear_target, scale=1.6e5,
                     reference="li2017 eq. 10, linear kernel, Z = N",
                     paper_factor=lambda n, m: m / 2.0, paper_scale=1e3)
def mmd_linear(f, t, *, hyper, key, mask=None):
    n, _ = losses.sizes(f)
    return mmd.mmd_linear(f, t, mask=mask) / n


@register_style_loss("mmd-poly", target=mmd.poly_target, scale=0.33, hyper={"c": 0.0},
                     reference="li2017 eq. 9-10, (xᵀy + c)², Z = 4N²",
                     paper_factor=lambda n, m: m, paper_scale=0.05)
def mmd_poly(f, t, *, hyper, key, mask=None):
    n, _ = losses.sizes(f)
    return mmd.mmd_poly(f, t, c=hyper["c"], mask=mask) / (4.0 * n * n)


@register_style_loss("mmd-gauss", target=_identity, scale=1.5e11,
                     hyper={"sigma2": 0.0, "width": 2.0},
                     uses_key=True, permutation_invariant=False,
                     reference="li2017 eq. 10 + §4, Gaussian kernel, linear-time "
                               "estimator, Z = 1",
                     paper_factor=lambda n, m: 1.0 / (4.0 * n), paper_scale=1.5e14)
def mmd_gauss(f, t, *, hyper, key, mask=None):
    return mmd.mmd_gaussian(f, t, key, sigma2=hyper["sigma2"], mask=mask,
                            width=hyper["width"])


# ------------------------------------------------------------------------- statistics


@register_style_loss("bn", target=statistics.bn_target, scale=9.6e4,
                     reference="li2017 eq. 11-12",
                     paper_factor=lambda n, m: m / 2.0, paper_scale=500.0)
def bn(f, t, *, hyper, key, mask=None):
    return statistics.bn_statistics_loss(f, t, mask=mask)


@register_style_loss("moments", target=statistics.moment_target, scale=1.4e-4,
                     hyper={**{f"w{i}": 1.0 for i in range(1, statistics.MAX_MOMENT + 1)},
                            "literal_psi": 0.0},
                     reference="stylerep eq. 1.4-1.5, N = 4, weights w1..w4; ψ with |M_1| "
                               "unless literal_psi = 1 (our guess)")
def moments(f, t, *, hyper, key, mask=None):
    w = jnp.stack([jnp.asarray(hyper[f"w{i}"]) for i in range(1, t.moments.shape[0] + 1)])
    return statistics.moment_loss(f, t, w, mask=mask, literal_psi=hyper["literal_psi"])


@register_style_loss("channel-mmd", target=_identity, scale=3.5e8, hyper={"sigma2": 0.0},
                     permutation_invariant=False,
                     reference="stylerep eq. 1.6 (mean over pairs)")
def channel_mmd(f, t, *, hyper, key, mask=None):
    return statistics.channel_mmd_loss(f, t, sigma2=hyper["sigma2"], mask=mask)


# ------------------------------------------------------------------------ dislocators


def _register_dislocator(name, statistic, scale, reference):
    @register_style_loss(name, target=statistic, scale=scale, reference=reference)
    def dislocator(f, t, *, hyper, key, mask=None):
        return statistics.dislocator_loss(statistic(f, mask=mask), t)
    return dislocator


mean = _register_dislocator("mean", statistics.scaled_sum, 3.3e10,
                            "du2017 §3.5 dislocator 1 (scaled sum)")
mean_sq = _register_dislocator("mean-sq", statistics.scaled_sum_squares, 3.8e3,
                               "du2017 §3.5 dislocator 2 (scaled sum of squares)")
mean_abs = _register_dislocator("mean-abs", statistics.scaled_sum_abs, 3.3e10,
                                "du2017 §3.5 dislocator 3 (scaled sum of |F|)")


@register_style_loss("stats", target=statistics.sample_statistics, scale=650.0,
                     hyper={s: 1.0 for s in statistics.STATISTICS},
                     reference="du2017 §3.5 sample mean, std, skewness, kurtosis")
def stats(f, t, *, hyper, key, mask=None):
    w = jnp.stack([jnp.asarray(hyper[s]) for s in statistics.STATISTICS])
    return statistics.statistics_loss(f, t, w, mask=mask)


def _register_one_statistic(name, scale):
    onehot = np.asarray([float(s == name) for s in statistics.STATISTICS], np.float32)

    @register_style_loss(f"stats-{name}", target=statistics.sample_statistics, scale=scale,
                         reference=f"du2017 §3.5 sample {name} alone")
    def one_statistic(f, t, *, hyper, key, mask=None):
        return statistics.statistics_loss(f, t, onehot, mask=mask)
    return one_statistic


stats_mean, stats_std, stats_skew, stats_kurt = (
    _register_one_statistic(name, scale)
    for name, scale in zip(statistics.STATISTICS, (1.6e5, 1.7e5, 1.1e7, 650.0)))
