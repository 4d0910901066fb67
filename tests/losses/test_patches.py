"""Tests of the patch/matching style losses (nstjax.losses.patches).

Every value is checked against a NumPy form written from the papers' equations, not from the
JAX code: STROTSS (Kolkin et al. 2019) ℓ_r and ℓ_m with an explicit cosine-distance matrix and
``np.cov``-style moments; Li & Wand (2016) eq. 2-3 with patches cut out by Python loops and
the nearest neighbour by ``np.argmax`` of the normalised cross-correlations.

Tolerances:

* float64, ``rtol = 1e-9``: both sides sum the same terms in a different order (~1e-15
  relative on these sizes); a wrong normaliser, level or matching is off by ≥ 1e-3.
* float32 statements give their own bound where they appear.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import feature_maps as _maps
from conftest import make_image
from conftest import rows as _rows

import nstjax
from nstjax import losses as S
from nstjax.losses import patches as P
from nstjax.objective.terms import PALETTE_SALT

RTOL64 = 1e-9
NEW = ("relaxed-emd", "mrf")


def _loss(name, f, s, key=None, *, mask=None):
    m = S.get_style_loss(name)
    key = jax.random.PRNGKey(3) if key is None else key
    return m.loss(jnp.asarray(f), m.target(jnp.asarray(s)), hyper={}, key=key,
                  mask=None if mask is None else jnp.asarray(mask))


# --------------------------------------------------------------------------- NumPy forms


def _cos_dist_np(x, y):
    """C_ij = 1 − cos(x_i, y_j) (STROTSS), norms floored as documented (1e-12 on ‖·‖²)."""
    nx = np.sqrt(np.maximum((x * x).sum(1), 1e-12))
    ny = np.sqrt(np.maximum((y * y).sum(1), 1e-12))
    return 1.0 - (x @ y.T) / nx[:, None] / ny[None, :]


def _remd_terms_np(x, y, wx=None):
    """ℓ_r of STROTSS between the rows ``x`` (weights ``wx``: weighted mean over the
    output, minimum over its positive-weight rows) and ``y``."""
    wx = np.ones(len(x)) if wx is None else np.asarray(wx, float)
    c = _cos_dist_np(x, y)
    r_out = (wx * c.min(1)).sum() / wx.sum()
    r_sty = c[wx > 0].min(0).mean()
    return max(r_out, r_sty)


UNIT = 58.0     # Caffe-scaled features over ImageNet-normalised ones: 255 × 0.226


def _moments_np(x, y, wx=None):
    """ℓ_m of STROTSS eq. 5: 1/d ‖μ − μ_s‖₁ + 1/d² ‖Σ − Σ_s‖₁ (weighted population moments)
    on the features in STROTSS's units (divided by 58)."""
    x, y = np.asarray(x) / UNIT, np.asarray(y) / UNIT
    wx = np.ones(len(x)) if wx is None else np.asarray(wx, float)
    d = x.shape[1]
    mu, mu_s = np.average(x, axis=0, weights=wx), y.mean(0)
    cov = np.cov(x.T, aweights=wx, bias=True)
    cov_s = np.cov(y.T, bias=True)
    return np.abs(mu - mu_s).sum() / d + np.abs(cov - cov_s).sum() / d ** 2


def _remd_np(f, s, w=None, *, weights=(1.0, 1.0)):
    """STROTSS w_r ℓ_r + w_m ℓ_m with all positions (at most 1024 on each side)."""
    x, y = _rows(f), _rows(s)
    wx = None if w is None else np.ravel(w)
    return weights[0] * _remd_terms_np(x, y, wx) + weights[1] * _moments_np(x, y, wx)


def _pad3_np(a, mode):
    pads = [((3 - n) // 2, 3 - n - (3 - n) // 2) if n < 3 else (0, 0) for n in a.shape[:2]]
    return np.pad(a, pads + [(0, 0)] * (a.ndim - 2), mode=mode)


def _patches_np(f):
    """All 3×3×C patches (stride 1), flattened (dy, dx, c), centres in raster order."""
    f = _pad3_np(f, "constant")
    out = []
    for i in range(f.shape[0] - 2):
        for j in range(f.shape[1] - 2):
            out.append(f[i:i + 3, j:j + 3, :].ravel())
    return np.array(out)


def _mrf_np(f, s, w=None, cap=4096):
    """Li & Wand eq. 2-3: nearest style patch by normalised cross-correlation, mean over
    patches and patch entries; style patches ⌊k·P_s/K⌋ when more than ``cap``; a patch weighs
    its centre's weight, 0 if it covers a zero-weight position."""
    p, q = _patches_np(f), _patches_np(s)
    if len(q) > cap:
        q = q[(np.arange(cap) * len(q)) // cap]
    ncc = (p @ q.T) / np.sqrt(np.maximum((p * p).sum(1), 1e-12))[:, None] \
        / np.sqrt(np.maximum((q * q).sum(1), 1e-12))[None, :]
    d = ((p - q[ncc.argmax(1)]) ** 2).mean(1)
    if w is None:
        return d.mean()
    wp = _pad3_np(np.asarray(w, float), "edge")
    v = []
    for i in range(wp.shape[0] - 2):
        for j in range(wp.shape[1] - 2):
            win = wp[i:i + 3, j:j + 3]
            v.append(win[1, 1] if (win > 0).all() else 0.0)
    v = np.array(v)
    return (v * d).sum() / v.sum()


# ------------------------------------------------------------------------------- values


@pytest.mark.parametrize("shapes", [((6, 5, 4), (4, 7, 4)), ((2, 9, 3), (5, 1, 3)),
                                    ((1, 1, 3), (3, 3, 3))])
def test_value_matches_numpy(x64, shapes):
    """Both methods, unequal sizes, maps smaller than 3 (zero-padded for mrf), rtol 1e-9."""
    f, s = _maps(0, *shapes)
    np.testing.assert_allclose(float(_loss("relaxed-emd", f, s)), _remd_np(f, s), rtol=RTOL64)
    np.testing.assert_allclose(float(_loss("mrf", f, s)), _mrf_np(f, s), rtol=RTOL64)


def _gumbel_top_k_np(key, m, n, w=None):
    """The documented sample: the ``n`` largest of Gumbel noise drawn from ``key`` (zero-weight
    positions at −∞)."""
    g = np.asarray(jax.random.gumbel(key, (m,), jnp.float64))
    if w is not None:
        g = np.where(w > 0, g, -np.inf)
    return np.argsort(-g, kind="stable")[:n]


def test_relaxed_emd_term_weights(x64):
    """``remd``/``moment`` weigh ℓ_r and ℓ_m (rtol 1e-9); 0 turns a term off."""
    f, s = _maps(10)
    m = S.get_style_loss("relaxed-emd")
    t = m.target(jnp.asarray(s))
    for wr, wm in ((1.0, 0.0), (0.0, 1.0), (2.5, 0.3)):
        got = float(m.loss(jnp.asarray(f), t, hyper={"remd": wr, "moment": wm},
                           key=jax.random.PRNGKey(0)))
        np.testing.assert_allclose(got, _remd_np(f, s, weights=(wr, wm)), rtol=RTOL64)


def test_relaxed_emd_sampled_matches_numpy(x64):
    """With N = 8 < M: ℓ_r on the documented samples (uniform among positive weights, without
    replacement, both sides), ℓ_m on all positions; rtol 1e-9.  Different keys give different
    values, and the zero-weight positions are never drawn."""
    f, s = _maps(1, (5, 6, 4), (4, 4, 4))
    x, y = _rows(f), _rows(s)
    w = np.random.default_rng(2).uniform(0.2, 1.5, size=30)
    w[:10] = 0.0
    key = jax.random.PRNGKey(11)
    k_out, k_sty = jax.random.split(key)
    iy = _gumbel_top_k_np(k_sty, 16, 8)
    t = P.remd_target(jnp.asarray(s))
    for wx in (None, w):
        ix = _gumbel_top_k_np(k_out, 30, 8, wx)
        if wx is not None:
            assert (ix >= 10).all()
        r, m = P.relaxed_emd_terms(jnp.asarray(f), t, key, samples=8,
                                   mask=None if wx is None else jnp.asarray(w.reshape(5, 6)))
        np.testing.assert_allclose(float(r), _remd_terms_np(
            x[ix], y[iy], None if wx is None else wx[ix]), rtol=RTOL64)
        np.testing.assert_allclose(float(m), _moments_np(x, y, wx), rtol=RTOL64)
    r2, _ = P.relaxed_emd_terms(jnp.asarray(f), t, jax.random.PRNGKey(12), samples=8)
    r1, _ = P.relaxed_emd_terms(jnp.asarray(f), t, key, samples=8)
    assert abs(float(r1) - float(r2)) > 1e-6


def test_relaxed_emd_target_subsamples_large_styles(x64):
    """A style of 70·70 = 4900 > 4096 rows keeps rows ⌊k·4900/4096⌋, with the moments of all
    4900 rows (exact equality: a gather, and the same mean/cov formula as np on 4900 rows to
    rtol 1e-9)."""
    s = np.random.default_rng(3).normal(size=(70, 70, 3))
    t = P.remd_target(jnp.asarray(s))
    y = _rows(s)
    np.testing.assert_array_equal(np.asarray(t.rows), y[(np.arange(4096) * 4900) // 4096])
    np.testing.assert_allclose(np.asarray(t.mean), y.mean(0), rtol=RTOL64)
    np.testing.assert_allclose(np.asarray(t.cov), np.cov(y.T, bias=True), rtol=RTOL64,
                               atol=1e-15)


def test_mrf_blocked_matching_and_style_cap_match_numpy(x64):
    """36×36 output (1156 patches > the 1024-row block: two blocks, the second padded) against
    a 70×70 style (4624 patches > 4096: the regular subsample), C = 2; with and without a
    weighted mask (rtol 1e-9)."""
    rng = np.random.default_rng(4)
    f = rng.normal(size=(36, 36, 2))
    s = rng.normal(size=(70, 70, 2)) + 0.3
    w = rng.uniform(0.2, 1.5, size=(36, 36))
    w[5:9, 10:20] = 0.0
    np.testing.assert_allclose(float(_loss("mrf", f, s)), _mrf_np(f, s), rtol=RTOL64)
    np.testing.assert_allclose(float(_loss("mrf", f, s, mask=w)), _mrf_np(f, s, w), rtol=RTOL64)


@pytest.mark.parametrize("name", NEW)
def test_weighted_mask_matches_numpy(x64, name):
    """Soft weights with a zero band: the documented weighting (rtol 1e-9)."""
    f, s = _maps(5, (7, 6, 4), (5, 5, 4))
    w = np.random.default_rng(6).uniform(0.2, 1.5, size=(7, 6))
    w[:2] = 0.0
    ref = {"relaxed-emd": _remd_np, "mrf": _mrf_np}[name]
    np.testing.assert_allclose(float(_loss(name, f, s, mask=w)), ref(f, s, w), rtol=RTOL64)


@pytest.mark.parametrize("name", NEW)
def test_mask_of_ones_is_the_plain_method(x64, name):
    """rtol 1e-12: Σ w·d/Σ w with w = 1 against a mean, rounding only.  Also on the sampled
    path of relaxed-emd (ones draw the same sample as no mask)."""
    f, s = _maps(7, (6, 6, 4), (5, 4, 4))
    ones = np.ones(f.shape[:2])
    np.testing.assert_allclose(float(_loss(name, f, s, mask=ones)), float(_loss(name, f, s)),
                               rtol=1e-12)
    if name == "relaxed-emd":
        t, key = P.remd_target(jnp.asarray(s)), jax.random.PRNGKey(8)
        a = P.relaxed_emd_terms(jnp.asarray(f), t, key, samples=10)
        b = P.relaxed_emd_terms(jnp.asarray(f), t, key, samples=10, mask=jnp.asarray(ones))
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-12)


# ---------------------------------------------------------------------------- identity


def test_zero_at_identity(x64):
    """F = style, every position used: ℓ_r = ℓ_m = 0 for relaxed-emd (float64: the diagonal
    cosines are 1 to rounding, |ℓ_r| < 1e-15) and exactly 0 for mrf (each patch is its own
    nearest style patch); ℓ_r > 0 and ℓ_m > 0 otherwise.  In float32 the relaxed EMD's
    diagonal cosine rounds (1 − cos ≈ ±1e-7, either sign), so |loss| is bounded by 1e-6
    there, not exactly 0 (why it is left out of test_style_losses.py::test_zero_at_identity)."""
    f, g = _maps(9)
    fj = jnp.asarray(f)
    r, m = P.relaxed_emd_terms(fj, P.remd_target(fj), jax.random.PRNGKey(0))
    assert abs(float(r)) < 1e-15 and float(m) == 0.0
    r, m = P.relaxed_emd_terms(fj, P.remd_target(jnp.asarray(g)), jax.random.PRNGKey(0))
    assert float(r) > 1e-3 and float(m) > 1e-3
    assert float(_loss("mrf", f, f)) == 0.0
    assert float(_loss("mrf", f, g)) > 1e-3
    f32 = jnp.asarray(f, jnp.float32)
    assert abs(float(_loss("relaxed-emd", f32, f32))) < 1e-6
    assert float(_loss("mrf", f32, f32)) == 0.0


def test_constant_maps_closed_form():
    """float32, constant maps F = 300, style = 100, 40×40×64 (the 512² version of this check is
    too slow for mrf: 2.6e5 × 4096 × 576 multiply-adds): mrf is (300 − 100)² (every patch
    matches a constant style patch), relaxed-emd is |300 − 100|/58 (ℓ_r = 0: parallel
    vectors; the covariances vanish; features in STROTSS's units).  rtol 1e-5 (float32 sums
    of ≤ 1600 equal terms)."""
    f = jnp.full((40, 40, 64), 300.0, jnp.float32)
    s = jnp.full((40, 40, 64), 100.0, jnp.float32)
    assert float(_loss("mrf", f, s)) == pytest.approx(200.0 ** 2, rel=1e-5)
    assert float(_loss("relaxed-emd", f, s)) == pytest.approx(200.0 / 58.0, rel=1e-5)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", NEW)
def test_gradients_finite_and_match_finite_differences(x64, name):
    """Directional derivative vs central differences (ε = 1e-6, rtol 1e-6: the minima/argmax
    do not switch within ε on these random maps), and a finite gradient with all-zero feature
    vectors (dead ReLUs) in the map and in the style."""
    m = S.get_style_loss(name)
    f, s = _maps(13)
    t = m.target(jnp.asarray(s))
    key = jax.random.PRNGKey(14)
    v = np.random.default_rng(15).normal(size=f.shape)

    def loss(a):
        return m.loss(a, t, hyper={}, key=key)

    g = np.asarray(jax.grad(loss)(jnp.asarray(f)))
    eps = 1e-6
    fd = (float(loss(jnp.asarray(f + eps * v))) - float(loss(jnp.asarray(f - eps * v)))) / (2 * eps)
    assert np.isfinite(g).all()
    np.testing.assert_allclose((g * v).sum(), fd, rtol=1e-6)
    fz, sz = np.maximum(f, 0.0), np.maximum(s, 0.0)
    fz[0, :2], sz[1, :3] = 0.0, 0.0
    gz = jax.grad(lambda a: m.loss(a, m.target(jnp.asarray(sz)), hyper={}, key=key))(
        jnp.asarray(fz))
    assert np.isfinite(np.asarray(gz)).all()


@pytest.mark.parametrize("name", NEW)
def test_zero_weight_positions_take_no_part(x64, name):
    """Exactly zero gradient where the weight is 0 (for mrf also at the positions next to them,
    which the zero-weight patches hold), and the value does not change when the features there
    do."""
    m = S.get_style_loss(name)
    f, s = _maps(16, (7, 6, 4), (5, 5, 4))
    w = np.ones((7, 6))
    w[:, :2] = 0.0
    t, key = m.target(jnp.asarray(s)), jax.random.PRNGKey(17)
    g = np.asarray(jax.grad(lambda a: m.loss(a, t, hyper={}, key=key, mask=jnp.asarray(w)))(
        jnp.asarray(f)))
    assert np.all(g[:, :2] == 0.0) and np.abs(g[:, 3:]).max() > 0
    f2 = f.copy()
    f2[:, :2] = 5.0
    np.testing.assert_allclose(float(_loss(name, f2, s, key, mask=w)),
                               float(_loss(name, f, s, key, mask=w)), rtol=1e-12)


# ------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("name", NEW)
def test_jit_and_vmap(name):
    """jit equals eager (float32 rtol 1e-5: fusion may reorder sums), vmap over a batch of
    maps and over keys equals the loop, on a map large enough to sample (relaxed-emd:
    40×40 = 1600 > 1024 positions) and to be matched in two blocks (mrf: 38² = 1444 patches)."""
    m = S.get_style_loss(name)
    rng = np.random.default_rng(18)
    fs = jnp.asarray(np.maximum(rng.normal(size=(2, 40, 40, 3)), 0.0), jnp.float32)
    t = m.target(jnp.asarray(np.maximum(rng.normal(size=(30, 30, 3)) + 0.2, 0.0), jnp.float32))
    keys = jax.random.split(jax.random.PRNGKey(19), 2)

    def one(f, k):
        return m.loss(f, t, hyper={}, key=k)

    loop = np.array([float(one(fs[i], keys[i])) for i in range(2)])
    np.testing.assert_allclose(float(jax.jit(one)(fs[0], keys[0])), loop[0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(one))(fs, keys)), loop, rtol=1e-5)
    g = jax.jit(jax.vmap(jax.grad(one)))(fs, keys)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_registry_fields():
    remd, mrf = S.get_style_loss("relaxed-emd"), S.get_style_loss("mrf")
    assert remd.uses_key and remd.permutation_invariant
    assert remd.hyper == {"remd": 1.0, "moment": 1.0, "palette": 1.0}
    assert not mrf.uses_key and not mrf.permutation_invariant and mrf.hyper == {}
    assert "STROTSS" in remd.reference and "Li & Wand" in mrf.reference
    assert S.relaxed_emd is remd and S.mrf is mrf


@pytest.mark.parametrize("losses", [("relaxed-emd",), ("gram", "mrf")],
                         ids=lambda v: "+".join(v))
def test_stylize_end_to_end(losses):
    """nstjax.stylize on the tiny random VGG at 32×32 (relu5_1 is 2×2 there: mrf pads it),
    3 Adam iterations: a finite loss and history, a positive style term."""
    vgg = nstjax.init_random_weights(jax.random.PRNGKey(0))
    content = jnp.asarray(make_image(32, 32, seed=1))
    style = jnp.asarray(make_image(32, 32, seed=2))
    objective = nstjax.Objective(style_losses=losses)
    res = nstjax.stylize(vgg, content, style, key=jax.random.PRNGKey(0), objective=objective,
                         solver=nstjax.Solver(optimizer="adam", max_iter=3))
    hist = np.asarray(res.history)[: int(res.n_iter)]
    assert int(res.n_iter) == 3 and np.all(np.isfinite(hist))
    assert np.isfinite(float(res.loss)) and float(res.terms["style"]) > 0.0


# ------------------------------------------------------------------- STROTSS's palette term


def _palette_np(image, style, w=None):
    """ℓ_p with every pixel (≤ 1024 each side): the relaxed EMD of the colours less mid-grey
    under cosine distance + √(‖x − y‖²/3) (STROTSS ``remd_loss`` for 3 channels)."""
    x = np.asarray(image, float).reshape(-1, 3) - 0.5
    y = np.asarray(style, float).reshape(-1, 3) - 0.5
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / 3.0
    c = _cos_dist_np(x, y) + np.sqrt(np.clip(sq, 1e-5, 1e5))
    wx = np.ones(len(x)) if w is None else np.ravel(w)
    return max((wx * c.min(1)).sum() / wx.sum(), c[wx > 0].min(0).mean())


@pytest.mark.parametrize("masked", [False, True])
def test_palette_matches_numpy(x64, masked):
    image, style = (make_image(24, 30, seed=1).astype(np.float64),
                    make_image(20, 26, seed=2).astype(np.float64))
    w = (np.random.default_rng(0).uniform(size=(24, 30)) > 0.4).astype(float) if masked else None
    got = P.palette_loss(jnp.asarray(image), P.palette_target(jnp.asarray(style)),
                         jax.random.PRNGKey(0), mask=None if w is None else jnp.asarray(w))
    np.testing.assert_allclose(float(got), _palette_np(image, style, w), rtol=RTOL64)
    same = P.palette_loss(jnp.asarray(style), P.palette_target(jnp.asarray(style)),
                          jax.random.PRNGKey(0))
    assert float(same) == pytest.approx(np.sqrt(1e-5), rel=1e-6)   # the clip's floor


def test_palette_enters_the_relaxed_emd_style_term(tiny_vgg):
    """The objective's style term grows by ``β λ · palette · Σ_l w_l · ℓ_p`` (float32,
    rtol 1e-4) and the palette is the only change between palette weights 0 and 1."""
    content, style = (jnp.asarray(make_image(32, 32, seed=s)) for s in (1, 2))
    objective = nstjax.Objective(style_losses=("relaxed-emd",))
    targets = nstjax.compute_targets(tiny_vgg, content, [style], objective=objective)
    assert targets.palette is not None and targets.palette[0].shape == (32 * 32, 3)
    key = jax.random.PRNGKey(0)
    x = jnp.asarray(make_image(32, 32, seed=3))

    def style_term(palette):
        w = nstjax.loss_weights(objective, hyper={"relaxed-emd.palette": palette})
        return float(nstjax.objective_terms(x, tiny_vgg, targets, w, key,
                                            objective=objective)["style"]), w

    off, _ = style_term(0.0)
    on, w = style_term(1.0)
    ell = float(P.palette_loss(x, targets.palette[0], jax.random.fold_in(key, PALETTE_SALT)))
    expected = float(w.style_weight * w.style_mix[0] * w.style_scales[0]) * float(
        jnp.sum(w.style_layer_weights)) * ell
    assert on - off == pytest.approx(expected, rel=1e-4)
    plain = nstjax.compute_targets(tiny_vgg, content, [style], objective=nstjax.Objective())
    assert plain.palette is None
