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

# Each family registers its own methods where it defines them; importing them here (as
# nstjax.losses does) registers every built-in one.
from nstjax.losses import gram, mmd, statistics  # noqa: E402, F401, I001
from nstjax.losses import distribution, patches  # noqa: E402, F401
