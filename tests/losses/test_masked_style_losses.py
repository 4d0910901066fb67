"""Tests of position masks in every registered style method: ``mask: f32[H, W]`` weights
each position in every statistic (the contract of nstjax.losses.registry), against NumPy
forms of the weighted statistics written from their definitions.  Tolerances as in
test_style_losses (float64 ``rtol = 1e-9``; float32 bounds stated where they appear)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import feature_maps as _maps
from conftest import rows as _rows
from style_forms import CUSTOM_HYPER, NAMES, REFERENCE, RTOL64, _gram_np, _loss

from nstjax import losses as S
from nstjax.losses import core as losses
from nstjax.losses import mmd, statistics
from nstjax.objective.config import default_hyper

# --------------------------------------------------------------------------- position masks
#
# The contract: ``loss(F, T, *, hyper, key, mask)`` with ``mask: f32[H, W]`` weighting each
# position in every statistic; ``None`` is the plain method.  The NumPy forms below write the
# weighted statistics from their definitions (weighted sums over positions divided by the
# total weight), independently of nstjax.losses.core.position_mean / position_weights.

# Methods whose every statistic is a weighted mean over positions: scaling the mask by a
# constant changes nothing.  The four Gram losses compare the weighted *sum* G = Σ_p w_p f_p f_pᵀ
# with the style's unnormalised Gram, so a scaled mask scales G.
GRAM_SUMS = ("gram", "gram-gamma", "gram-hw", "gram-chw")
# Methods that pair positions (their value is a mean over pairs, not over positions), so a 0/1
# mask is not the same as cutting the map down to the selected positions.
PAIRED = ("mmd-gauss", "channel-mmd")
# Bandwidths fixed (> 0) for the paired methods where a test needs the value to be a function
# of the weighted pairs only (see test_masked_out_positions_do_not_change_the_value).
FIXED_BANDWIDTH = {"mmd-gauss": {"sigma2": 1.3}, "channel-mmd": {"sigma2": 1.3}}


def _weights(shape, seed=0, *, zero_rows=0):
    """Position weights in [0.2, 1.5] over an H×W map, the first ``zero_rows`` rows 0."""
    w = np.random.default_rng(100 + seed).uniform(0.2, 1.5, size=shape[:2])
    w[:zero_rows] = 0.0
    return w


def _selected(f, sel):
    """The features at the selected positions only, as a [|S|, 1, C] map (raster order)."""
    return _rows(f)[sel.ravel()][:, None, :]


@pytest.mark.parametrize("name", NAMES)
def test_mask_of_ones_is_the_plain_method(x64, name):
    """mask = 1 everywhere gives the unmasked value, for every method and hyper-parameter set.

    rtol 1e-12: the two sides sum the same terms, one through ``Σ w_p x_p / Σ w_p`` with w = 1
    and one through ``mean``; they differ by rounding (~1e-16 relative per sum, amplified at
    most ~1e2 by the cancellations in the loss differences on these sizes)."""
    f, s = _maps(20)
    ones = np.ones(f.shape[:2])
    key = jax.random.PRNGKey(21)
    for hyper in [{}] + ([CUSTOM_HYPER[name]] if name in CUSTOM_HYPER else []):
        plain = float(_loss(name, f, s, hyper, key))
        masked = float(_loss(name, f, s, hyper, key, mask=ones))
        np.testing.assert_allclose(masked, plain, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_zero_weight_positions_get_zero_gradient(x64, name):
    """Positions of weight 0 take no part: the gradient of the loss with respect to the features
    there is exactly 0 (every path to them goes through a product with w_p = 0), while without
    the mask it is not, and positions of positive weight still get a gradient.  The data-driven
    Gaussian bandwidths (sigma2 = 0, the default) carry no gradient by design, so the default
    hyper-parameters are used here."""
    m = S.get_style_loss(name)
    f, s = _maps(22)
    w = _weights(f.shape, 1, zero_rows=2)             # positions 0..9 of 30 have weight 0
    t = m.target(jnp.asarray(s))
    key = jax.random.PRNGKey(23)

    def grad(mask):
        return np.asarray(jax.grad(lambda a: m.loss(a, t, hyper={}, key=key, mask=mask))(
            jnp.asarray(f)))

    g_masked, g_plain = grad(jnp.asarray(w)), grad(None)
    zero = w == 0.0
    assert np.isfinite(g_masked).all()
    assert np.all(g_masked[zero] == 0.0)
    assert np.abs(g_plain[zero]).max() > 1e-6
    assert np.abs(g_masked[~zero]).max() > 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_masked_out_positions_do_not_change_the_value(x64, name):
    """Changing the features where the mask is 0 leaves the loss unchanged (rtol 1e-12, rounding
    only), with each method's default hyper-parameters."""
    f, s = _maps(24)
    w = _weights(f.shape, 2, zero_rows=2)
    g = f.copy()
    g[:2] = np.random.default_rng(25).normal(size=g[:2].shape) * 10.0
    key = jax.random.PRNGKey(26)
    np.testing.assert_allclose(float(_loss(name, g, s, {}, key, mask=w)),
                               float(_loss(name, f, s, {}, key, mask=w)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", PAIRED)
def test_masked_out_positions_with_fixed_bandwidth(x64, name):
    """With a fixed bandwidth the paired methods depend on the weighted pairs only (rtol 1e-12)."""
    f, s = _maps(24)
    w = _weights(f.shape, 2, zero_rows=2)
    g = f.copy()
    g[:2] = np.random.default_rng(25).normal(size=g[:2].shape) * 10.0
    key, hyper = jax.random.PRNGKey(26), FIXED_BANDWIDTH[name]
    a = float(_loss(name, f, s, hyper, key, mask=w))
    np.testing.assert_allclose(float(_loss(name, g, s, hyper, key, mask=w)), a, rtol=1e-12)
    assert abs(float(_loss(name, g, s, hyper, key)) - float(_loss(name, f, s, hyper, key))) \
        > 1e-3 * abs(a)     # without the mask the changed features do count


# Patch methods: a position's value depends on its neighbours, so a 0/1 mask is not the method
# on the selected positions cut out as a |S|×1 map (tests/losses/test_patches.py tests mrf's
# mask rule against its own NumPy form).
PATCHES = ("mrf",)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in PAIRED + PATCHES])
def test_binary_mask_is_the_method_on_the_selected_positions(x64, name):
    """A 0/1 mask equals the plain method on the selected positions alone (a |S|×1 map), with
    M = |S| in every normaliser: the NumPy references of the unmasked methods, applied to the
    selected rows (for Gram, G = Σ_{p∈S} f_p f_pᵀ and E = Σ(G − A)²/(4N²|S|²), the guided Gram
    of Gatys et al. 2017 §4 with a binary guide).  float64, rtol 1e-9 as above."""
    f, s = _maps(27)
    rng = np.random.default_rng(28)
    sel = rng.uniform(size=f.shape[:2]) < 0.6
    sel[0, 0], sel[0, 1] = True, False
    key = jax.random.PRNGKey(29)
    for hyper in [{}] + ([CUSTOM_HYPER[name]] if name in CUSTOM_HYPER else []):
        full = {**S.get_style_loss(name).hyper, **hyper}
        want = REFERENCE[name](_selected(f, sel), s, full, key)
        got = float(_loss(name, f, s, hyper, key, mask=sel.astype(np.float64)))
        np.testing.assert_allclose(got, want, rtol=RTOL64, atol=1e-14)


def test_guided_gram_closed_form(x64):
    """``gram_matrix(F, mask=w) = Σ_p w_p f_p f_pᵀ`` for any weights, and with a 0/1 mask the
    Gatys loss is ``Σ(G_S − A)² / (4 N² |S|²)`` with ``G_S`` the Gram of the selected rows."""
    f, s = _maps(30)
    x, y = _rows(f), _rows(s)
    w = _weights(f.shape, 3)
    want = np.einsum("p,pi,pj->ij", w.ravel(), x, x)
    got = losses.gram_matrix(jnp.asarray(f), mask=jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL64)
    sel = np.zeros(f.shape[:2], bool)
    sel[1:4, 2:] = True                                           # |S| = 9 of 30
    xs = x[sel.ravel()]
    n_sel, c = xs.shape
    e = (((xs.T @ xs - y.T @ y) ** 2).sum()) / (4 * c ** 2 * n_sel ** 2)
    got = losses.gram_loss(jnp.asarray(f), jnp.asarray(y.T @ y), mask=jnp.asarray(sel, float))
    np.testing.assert_allclose(float(got), e, rtol=RTOL64)
    # weighted: M = Σ w, G = Σ w f fᵀ
    e_w = ((want - y.T @ y) ** 2).sum() / (4 * c ** 2 * w.sum() ** 2)
    got = losses.gram_loss(jnp.asarray(f), jnp.asarray(y.T @ y), mask=jnp.asarray(w))
    np.testing.assert_allclose(float(got), e_w, rtol=RTOL64)


def test_weighted_bn_statistics_match_numpy(x64):
    """Weighted BN statistics (li2017 eq. 12 over weighted positions) equal NumPy's weighted
    mean (``np.average``) and weighted population std (``np.cov(aweights=w, bias=True)``),
    and the masked BN loss (eq. 11) is built from them.  Higher central moments likewise equal
    ``np.average((x − μ)^k, weights=w)``.  float64, rtol 1e-9."""
    f, s = _maps(31)
    x, y = _rows(f), _rows(s)
    w = _weights(f.shape, 4, zero_rows=1)
    mu = np.average(x, axis=0, weights=w.ravel())
    sd = np.sqrt(np.diag(np.cov(x.T, aweights=w.ravel(), bias=True)))
    got = np.asarray(statistics.bn_target(jnp.asarray(f), mask=jnp.asarray(w)))
    np.testing.assert_allclose(got, np.stack([mu, sd]), rtol=RTOL64)
    want = (((mu - y.mean(0)) ** 2).sum() + ((sd - y.std(0)) ** 2).sum()) / x.shape[1]
    np.testing.assert_allclose(float(_loss("bn", f, s, mask=w)), want, rtol=RTOL64)
    moments = np.asarray(statistics.central_moments(jnp.asarray(f), 4, mask=jnp.asarray(w)))
    want = [mu] + [np.average((x - mu) ** k, axis=0, weights=w.ravel()) for k in (2, 3, 4)]
    np.testing.assert_allclose(moments, np.stack(want), rtol=RTOL64)


def test_weighted_paired_methods_match_numpy(x64):
    """The paired methods weight pair ``(a, b)`` by ``w_a·w_b`` (mmd.mmd_gaussian and
    statistics.channel_mmd_loss docstrings): with a fixed bandwidth, the loss is the
    weighted mean over pairs of ``h = k(x_a, x_b) + k(y_a, y_b) − k(x_a, y_b) − k(x_b, y_a)``
    (Gretton et al. 2012 Lemma 14; stylerep eq. 1.6 per channel).  float64, rtol 1e-9."""
    f, s = _maps(32)
    x, y = _rows(f), _rows(s)
    w = _weights(f.shape, 5, zero_rows=1).ravel()
    key = jax.random.PRNGKey(33)
    s2 = 1.3
    # Gaussian: pairs drawn by the key (the same pairs as the unmasked estimator).
    ix, iy = (np.asarray(i) for i in mmd.gaussian_pairs(x.shape[0], y.shape[0], key))
    xa, xb, ya, yb = x[ix[:, 0]], x[ix[:, 1]], y[iy[:, 0]], y[iy[:, 1]]

    def k(a, b):
        return np.exp(-((a - b) ** 2).sum(-1) / (2 * s2))

    h = k(xa, xb) + k(ya, yb) - k(xa, yb) - k(xb, ya)
    want = np.average(h, weights=w[ix[:, 0]] * w[ix[:, 1]])
    got = float(_loss("mmd-gauss", f, s, {"sigma2": s2}, key, mask=w.reshape(f.shape[:2])))
    np.testing.assert_allclose(got, want, rtol=RTOL64)
    # Channel-wise: fixed pairs (2j, 2j+1) in raster order, per channel, summed over channels.
    p = min(x.shape[0], y.shape[0]) // 2
    pw = np.array([w[2 * j] * w[2 * j + 1] for j in range(p)])
    total = 0.0
    for i in range(x.shape[1]):
        hs = []
        for j in range(p):
            s1, s2_, n1, n2 = y[2 * j, i], y[2 * j + 1, i], x[2 * j, i], x[2 * j + 1, i]
            kk = [math.exp(-d / (2 * s2)) for d in
                  ((s1 - s2_) ** 2, (n1 - n2) ** 2, (s1 - n2) ** 2, (s2_ - n1) ** 2)]
            hs.append(kk[0] + kk[1] - kk[2] - kk[3])
        total += (pw * np.array(hs)).sum() / pw.sum()
    got = float(_loss("channel-mmd", f, s, {"sigma2": s2}, key, mask=w.reshape(f.shape[:2])))
    np.testing.assert_allclose(got, total, rtol=RTOL64)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in GRAM_SUMS])
def test_mean_based_methods_ignore_the_scale_of_the_mask(x64, name):
    """Every statistic except the Gram sums is a weighted mean, so mask and 3.7·mask give the
    same value (rtol 1e-12, rounding only)."""
    f, s = _maps(34)
    w = _weights(f.shape, 6)
    key = jax.random.PRNGKey(35)
    np.testing.assert_allclose(float(_loss(name, f, s, {}, key, mask=3.7 * w)),
                               float(_loss(name, f, s, {}, key, mask=w)), rtol=1e-12)


def test_style_loss_terms_pass_masks_per_layer(x64):
    """``style_loss_terms(..., masks={layer: f32[h, w]})``: masks of ones give the unmasked
    terms (rtol 1e-12), a mask reaches its own layer only (the Gram term of layer "a" with a 0/1
    mask is the NumPy value on the selected rows), and a mask of the wrong shape is refused."""
    rng = np.random.default_rng(36)
    feats = {"a": rng.normal(size=(6, 6, 3)) + 0.5, "b": rng.normal(size=(4, 4, 5)) + 0.5}
    style = {"a": rng.normal(size=(5, 6, 3)), "b": rng.normal(size=(3, 4, 5))}
    names = tuple(NAMES)
    fj = {k: jnp.asarray(v) for k, v in feats.items()}
    targets = S.style_targets(names, {k: jnp.asarray(v) for k, v in style.items()})
    lw = jnp.asarray([1.0, 0.5])
    key = jax.random.PRNGKey(37)
    hyper = default_hyper(names)
    plain = np.asarray(S.style_loss_terms(names, fj, targets, lw, hyper, key))
    ones = {k: jnp.ones(v.shape[:2]) for k, v in feats.items()}
    np.testing.assert_allclose(
        np.asarray(S.style_loss_terms(names, fj, targets, lw, hyper, key, masks=ones)), plain,
        rtol=1e-12, atol=1e-15)
    sel = rng.uniform(size=(6, 6)) < 0.5
    masks = {"a": jnp.asarray(sel, jnp.float64), "b": ones["b"]}
    got = np.asarray(S.style_loss_terms(names, fj, targets, lw, hyper, key, masks=masks))
    i = names.index("gram")
    want = _gram_np(_selected(feats["a"], sel), style["a"], "gatys") \
        + 0.5 * _gram_np(feats["b"], style["b"], "gatys")
    np.testing.assert_allclose(got[i], want, rtol=RTOL64)
    with pytest.raises(ValueError, match="mask"):
        S.style_loss_terms(names, fj, targets, lw, hyper, key,
                           masks={"a": jnp.ones((6, 5)), "b": ones["b"]})
