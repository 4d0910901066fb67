"""Tests of the distribution style losses (nstjax.losses.distribution).

Every value is checked against a NumPy/SciPy form written from the papers' formulas
(Heitz et al. 2021 sliced loss; the Gaussian W2 closed form; Risser et al. 2017 histogram
loss; Kalischek et al. 2021 / Zellinger et al. 2017 CMD), not from the JAX code: sorting
with ``np.sort``, quantiles with ``np.interp``, matrix square roots with
``scipy.linalg.sqrtm``, weighted statistics with ``np.average``/``np.cov(aweights=...)``.

Tolerances:

* float64, ``rtol = 1e-9``: both sides evaluate the same sums in a different order (or the
  same interpolation by a different formula), ~1e-15 relative on these sizes, while a wrong
  level convention, constant or normaliser is off by ≥ 1e-3.
* gaussian-w2 against SciPy: ``rtol = 1e-8``: ``scipy.linalg.sqrtm`` (Schur method) and our
  eigendecomposition agree to ~1e-13 relative on these well-conditioned 4×4 matrices, and
  the loss is a difference of traces of size ~10 with a value ~1, which loses one or two
  more digits.
* float32 comparisons state their own bound where they appear.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from conftest import feature_maps as _maps
from conftest import rows as _rows

import nstjax
from nstjax import losses as S
from nstjax.objective.config import default_hyper

RTOL64 = 1e-9
NEW = ("sliced-wasserstein", "gaussian-w2", "histogram", "cmd")
SORT_BASED = ("sliced-wasserstein", "histogram")




def _loss(name, f, s, hyper=None, key=None, *, mask=None):
    m = S.get_style_loss(name)
    key = jax.random.PRNGKey(3) if key is None else key
    return m.loss(jnp.asarray(f), m.target(jnp.asarray(s)), hyper={} if hyper is None else hyper,
                  key=key, mask=None if mask is None else jnp.asarray(mask))


# --------------------------------------------------------------------------- NumPy forms


def _levels_np(w):
    """Mid-levels of sorted samples with weights ``w`` (sorted order): (cum − w/2)/Σw."""
    c = np.cumsum(w)
    return (c - 0.5 * w) / w.sum()


def _quantile_np(y, u):
    """Style quantile function: sorted y at levels (j + ½)/M_s, linear between, flat outside."""
    ys = np.sort(y)
    return np.interp(u, (np.arange(len(ys)) + 0.5) / len(ys), ys)


def _w1d_np(x, y, w=None):
    """Σ_k w_(k) (x_(k) − Q_y(u_k))² / Σ w for one direction (Heitz's 1-D loss at equal sizes)."""
    w = np.ones_like(x) if w is None else w
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    q = _quantile_np(y, _levels_np(ws))
    return (ws * (xs - q) ** 2).sum() / ws.sum()


def _directions_np(key, c):
    """The documented directions: columns of N(0, 1)^{C×C} from ``key``, normalised."""
    v = np.asarray(jax.random.normal(key, (c, c), jnp.float64 if jax.config.jax_enable_x64
                                     else jnp.float32))
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def _sliced_np(f, s, key, w=None):
    x, y = _rows(f), _rows(s)
    v = _directions_np(key, x.shape[1])
    px, py = x @ v, y @ v
    return np.mean([_w1d_np(px[:, j], py[:, j], w) for j in range(v.shape[1])])


def _histogram_np(f, s, w=None):
    """Risser's histogram loss: per channel R = histogram-matched F; weighted mean of (F − R)²."""
    x, y = _rows(f), _rows(s)
    w = np.ones(x.shape[0]) if w is None else w
    r = np.empty_like(x)
    for c in range(x.shape[1]):
        order = np.argsort(x[:, c], kind="stable")
        r[order, c] = _quantile_np(y[:, c], _levels_np(w[order]))
    return (w[:, None] * (x - r) ** 2).sum() / (w.sum() * x.shape[1]), r


def _gauss_w2_np(f, s, w=None):
    x, y = _rows(f), _rows(s)
    w = np.ones(x.shape[0]) if w is None else w
    mx, my = np.average(x, axis=0, weights=w), y.mean(0)
    cx, cy = np.cov(x.T, aweights=w, bias=True), np.cov(y.T, bias=True)
    root = np.real(scipy.linalg.sqrtm(cy))
    cross = np.real(scipy.linalg.sqrtm(root @ cx @ root))
    return (((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * cross)) / x.shape[1]


def _cmd_np(f, s, weights=(1, 1, 1, 1, 1), w=None):
    """Zellinger's CMD_K with [a, b] = [0, 1] on σ(F), K = 5, orders weighted."""
    x, y = 1 / (1 + np.exp(-_rows(f))), 1 / (1 + np.exp(-_rows(s)))
    w = np.ones(x.shape[0]) if w is None else w
    mx, my = np.average(x, axis=0, weights=w), y.mean(0)
    total = weights[0] * np.linalg.norm(mx - my)
    for k in range(2, 6):
        ck_x = np.average((x - mx) ** k, axis=0, weights=w)
        ck_y = ((y - my) ** k).mean(0)
        total += weights[k - 1] * np.linalg.norm(ck_x - ck_y)
    return total


def _reference(name, f, s, key, w=None):
    if name == "sliced-wasserstein":
        return _sliced_np(f, s, key, w)
    if name == "histogram":
        return _histogram_np(f, s, w)[0]
    if name == "gaussian-w2":
        return _gauss_w2_np(f, s, w)
    return _cmd_np(f, s, w=w)


def _tol(name):
    return 1e-8 if name == "gaussian-w2" else RTOL64


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("shapes", [((6, 5, 4), (4, 7, 4)), ((5, 6, 4), (3, 10, 4))],
                         ids=["unequal", "equal"])
def test_value_matches_numpy(x64, name, shapes):
    """Unequal sizes (M = 30, M_s = 28: the quantile-matching path) and equal sizes
    (M = M_s = 30: sorted values compared directly)."""
    f, s = _maps(0, *shapes)
    key = jax.random.PRNGKey(3)
    got = _loss(name, f, s, key=key)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), _reference(name, f, s, key), rtol=_tol(name))


def test_sliced_unequal_sizes_use_quantile_matching(x64):
    """M ≠ M_s: each output order statistic meets the style's quantile at its own level, by
    linear interpolation (np.interp), not a truncation or resampling of the style.  Checked on
    one direction with a style of 3 samples against the hand-written interpolation, and the
    registered loss against the NumPy form (rtol 1e-9)."""
    x = np.array([0.3, -1.0, 2.0, 0.0, 5.0])                     # M = 5: levels .1 .3 .5 .7 .9
    y = np.array([1.0, -2.0, 4.0])                               # M_s = 3: levels 1/6, 1/2, 5/6
    ys = np.sort(y)
    q = S.distribution.style_quantiles(jnp.asarray(ys[:, None]),
                                       (jnp.arange(5.0) + 0.5) / 5)[:, 0]
    # level .1 < 1/6: flat at −2; .3 between 1/6 and 1/2: −2 + (0.3 − 1/6)·3·3 = −0.8; ...
    want = [-2.0, -2.0 + (0.3 - 1 / 6) * 3 * 3.0, 1.0, 1.0 + (0.7 - 0.5) * 3 * 3.0, 4.0]
    np.testing.assert_allclose(np.asarray(q), want, rtol=RTOL64)
    got = S.distribution.quantile_loss(jnp.asarray(x[:, None]), jnp.asarray(ys[:, None]))
    np.testing.assert_allclose(float(got), ((np.sort(x) - want) ** 2).mean(), rtol=RTOL64)
    f, s = _maps(1, (3, 3, 4), (5, 5, 4))                        # M = 9 < M_s = 25
    key = jax.random.PRNGKey(4)
    np.testing.assert_allclose(float(_loss("sliced-wasserstein", f, s, key=key)),
                               _sliced_np(f, s, key), rtol=RTOL64)


def test_sliced_directions_follow_the_key(x64):
    """Unit-norm directions; the same key gives the same value, another key another."""
    v = np.asarray(S.distribution.sliced_directions(jax.random.PRNGKey(0), 7, dtype=jnp.float64))
    np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, rtol=1e-12)
    f, s = _maps(2)
    a = float(_loss("sliced-wasserstein", f, s, key=jax.random.PRNGKey(1)))
    assert a == float(_loss("sliced-wasserstein", f, s, key=jax.random.PRNGKey(1)))
    assert abs(a - float(_loss("sliced-wasserstein", f, s, key=jax.random.PRNGKey(2)))) > 1e-6


def test_histogram_remap_is_exact_matching(x64):
    """R(F) keeps each channel's ranks and takes the style's values: at equal sizes its sorted
    channels are exactly the style's sorted channels; at unequal sizes it is the NumPy remap
    (rtol 1e-9).  The loss's gradient is 2(F − R)/(M·C): R is held constant (and is locally
    constant, a function of ranks), so it matches the NumPy closed form (rtol 1e-9)."""
    f, s = _maps(3, (5, 6, 4), (3, 10, 4))
    t = S.distribution.histogram_target(jnp.asarray(s))
    r = np.asarray(S.distribution.histogram_match(jnp.asarray(f), t))
    np.testing.assert_array_equal(np.sort(_rows(r), axis=0), np.sort(_rows(s), axis=0))
    np.testing.assert_array_equal(np.argsort(_rows(r), axis=0), np.argsort(_rows(f), axis=0))
    f, s = _maps(4)
    want_value, want_r = _histogram_np(f, s)
    r = np.asarray(S.distribution.histogram_match(jnp.asarray(f),
                                                  S.distribution.histogram_target(jnp.asarray(s))))
    np.testing.assert_allclose(_rows(r), want_r, rtol=RTOL64)
    m = S.get_style_loss("histogram")
    g = jax.grad(lambda a: m.loss(a, m.target(jnp.asarray(s)), hyper={}, key=None))(jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(g), 2 * (f - want_r.reshape(f.shape)) / f.size,
                               rtol=RTOL64, atol=1e-15)


def test_cmd_order_weights(x64):
    """w1..w5 reach the loss: (1, 0, 0, 0, 0) is ‖E σ(F) − E σ(F_s)‖₂ alone and other weights
    match the NumPy form (rtol 1e-9)."""
    f, s = _maps(5)
    only_mean = {"w1": 1.0, "w2": 0.0, "w3": 0.0, "w4": 0.0, "w5": 0.0}
    np.testing.assert_allclose(float(_loss("cmd", f, s, only_mean)),
                               _cmd_np(f, s, (1, 0, 0, 0, 0)), rtol=RTOL64)
    h = {"w1": 0.5, "w2": 2.0, "w3": 0.0, "w4": 3.0, "w5": 1.5}
    np.testing.assert_allclose(float(_loss("cmd", f, s, h)), _cmd_np(f, s, (0.5, 2, 0, 3, 1.5)),
                               rtol=RTOL64)


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize("name", ("sliced-wasserstein", "histogram", "cmd"))
def test_zero_at_identity(name):
    """loss(F, target(F)) is exactly 0 in float32: both sides are the same computation on the
    same input (same directions, sorted values compared directly at M = M_s, same moments)."""
    f, g = _maps(6)[0], _maps(7)[0]
    f = jnp.asarray(f, jnp.float32)
    assert float(_loss(name, f, f)) == 0.0
    assert float(_loss(name, f, jnp.asarray(g, jnp.float32))) > 0.0


def test_gaussian_w2_near_zero_at_identity(x64):
    """W2(N, N) = 0, but tr Σ + tr Σ − 2 tr (Σ^½ Σ Σ^½)^½ goes through two eigendecompositions:
    |L| ≤ 1e-12·tr Σ/C in float64 (rounding ~1e-15 relative) and ≤ 1e-4·tr Σ/C in float32
    (the covariance product squares the spectrum; eigenvalues of Σ² are ~1e-7 relative)."""
    f = _maps(8)[0]
    tr = np.trace(np.cov(_rows(f).T, bias=True)) / f.shape[-1]
    assert abs(float(_loss("gaussian-w2", f, f))) <= 1e-12 * tr
    with jax.enable_x64(False):
        f32 = jnp.asarray(f, jnp.float32)
        assert abs(float(_loss("gaussian-w2", f32, f32))) <= 1e-4 * tr
    assert float(_loss("gaussian-w2", f, _maps(9)[0])) > 1e-2


@pytest.mark.parametrize("name", NEW)
def test_spatial_permutation(x64, name):
    """Every new method ignores where features are (for a fixed key): permuting the output's or
    the style's positions leaves the value unchanged (rtol 1e-9: the order of the sums)."""
    assert S.get_style_loss(name).permutation_invariant
    f, s = _maps(10)
    fp = _rows(f)[np.random.default_rng(1).permutation(30)].reshape(f.shape)
    sp = _rows(s)[np.random.default_rng(2).permutation(28)].reshape(s.shape)
    a = float(_loss(name, f, s))
    np.testing.assert_allclose(float(_loss(name, fp, s)), a, rtol=RTOL64)
    np.testing.assert_allclose(float(_loss(name, f, sp)), a, rtol=RTOL64)


# --------------------------------------------------------------------------- masks


def _weights(shape, seed=0, *, zero_rows=0):
    w = np.random.default_rng(100 + seed).uniform(0.2, 1.5, size=shape[:2])
    w[:zero_rows] = 0.0
    return w


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("shapes", [((6, 5, 4), (4, 7, 4)), ((5, 6, 4), (3, 10, 4))],
                         ids=["unequal", "equal"])
def test_mask_of_ones_is_the_plain_method(x64, name, shapes):
    """Ones give the unmasked value (rtol 1e-12: at equal sizes the masked path interpolates at
    levels equal to the style's up to one ulp, ~1e-16 relative)."""
    f, s = _maps(20, *shapes)
    key = jax.random.PRNGKey(21)
    np.testing.assert_allclose(float(_loss(name, f, s, key=key, mask=np.ones(f.shape[:2]))),
                               float(_loss(name, f, s, key=key)), rtol=1e-12)


@pytest.mark.parametrize("name", NEW)
def test_binary_mask_is_the_method_on_the_selected_positions(x64, name):
    """A 0/1 mask equals the method on the selected positions alone (a |S|×1 map; every method
    here promises it): the registered loss on those rows and the NumPy form (rtol as above)."""
    f, s = _maps(27)
    sel = np.random.default_rng(28).uniform(size=f.shape[:2]) < 0.6
    key = jax.random.PRNGKey(29)
    cut = _rows(f)[sel.ravel()][:, None, :]
    got = float(_loss(name, f, s, key=key, mask=sel.astype(np.float64)))
    np.testing.assert_allclose(got, float(_loss(name, cut, s, key=key)), rtol=RTOL64)
    np.testing.assert_allclose(got, _reference(name, cut, s, key), rtol=_tol(name))


@pytest.mark.parametrize("name", NEW)
def test_weighted_mask_matches_numpy(x64, name):
    """General weights (two rows at 0): the weighted forms of the module docstring, in NumPy
    (weighted mid-levels (Σ_{i≤k} w_(i) − w_(k)/2)/W for the sort-based methods; weighted mean
    and covariance or central moments for the others).  rtol as above."""
    f, s = _maps(31)
    w = _weights(f.shape, 4, zero_rows=2)
    key = jax.random.PRNGKey(32)
    np.testing.assert_allclose(float(_loss(name, f, s, key=key, mask=w)),
                               _reference(name, f, s, key, w.ravel()), rtol=_tol(name))


@pytest.mark.parametrize("name", NEW)
def test_zero_weight_positions_take_no_part(x64, name):
    """Positions of weight 0: changing the features there leaves the value unchanged (rtol
    1e-12, rounding only), the gradient there is exactly 0, elsewhere it is not; scaling the
    mask changes nothing (every statistic is a weighted mean)."""
    m = S.get_style_loss(name)
    f, s = _maps(22)
    w = _weights(f.shape, 1, zero_rows=2)
    g = f.copy()
    g[:2] = np.random.default_rng(25).normal(size=g[:2].shape) * 10.0
    key = jax.random.PRNGKey(23)
    a = float(_loss(name, f, s, key=key, mask=w))
    np.testing.assert_allclose(float(_loss(name, g, s, key=key, mask=w)), a, rtol=1e-12)
    np.testing.assert_allclose(float(_loss(name, f, s, key=key, mask=3.7 * w)), a, rtol=1e-12)
    t = m.target(jnp.asarray(s))
    grad = np.asarray(jax.grad(lambda x: m.loss(x, t, hyper={}, key=key, mask=jnp.asarray(w)))(
        jnp.asarray(f)))
    assert np.isfinite(grad).all()
    assert np.all(grad[:2] == 0.0) and np.abs(grad[2:]).max() > 1e-6


# --------------------------------------------------------------------------- gradients


def _fd_check(loss, f, seed, rtol=1e-6):
    """Directional derivative vs central differences, ε = 1e-5 in float64: truncation
    O(ε²·L''') ~ 1e-10 and rounding O(1e-16·L/ε) ~ 1e-11 relative, so rtol = 1e-6."""
    v = np.random.default_rng(seed).normal(size=f.shape)
    g = np.asarray(jax.grad(loss)(jnp.asarray(f)))
    eps = 1e-5
    fd = (float(loss(jnp.asarray(f + eps * v))) - float(loss(jnp.asarray(f - eps * v)))) / (2 * eps)
    assert np.isfinite(g).all()
    np.testing.assert_allclose((g * v).sum(), fd, rtol=rtol, atol=1e-12)
    return g


@pytest.mark.parametrize("name", NEW)
def test_gradient_matches_finite_differences(x64, name):
    m = S.get_style_loss(name)
    f, s = _maps(11)
    t = m.target(jnp.asarray(s))
    key = jax.random.PRNGKey(5)
    for mask in (None, jnp.asarray(_weights(f.shape, 3))):
        _fd_check(lambda a: m.loss(a, t, hyper={}, key=key, mask=mask), f, 3)


def test_trace_sqrtm_gradient_closed_form(x64):
    """∇ tr A^½ = U diag(f'(λ)) Uᵀ with f'(λ) = 1/(2√λ) on the live eigenvalues and 0 on the
    zero ones (rtol 1e-12: one eigendecomposition either way), where plain autodiff of
    Σ √max(λ, 0) is NaN; and at a C-fold eigenvalue (A = 2I) it is I/(2√2)."""
    rng = np.random.default_rng(39)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    lam = np.array([3.0, 1.5, 0.7, 0.0, 0.0])
    a = (q * lam) @ q.T
    slope = np.where(lam > 0, 0.5 / np.sqrt(np.where(lam > 0, lam, 1.0)), 0.0)
    got = np.asarray(jax.grad(S.distribution.trace_sqrtm)(jnp.asarray(a)))
    np.testing.assert_allclose(got, (q * slope) @ q.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(float(S.distribution.trace_sqrtm(jnp.asarray(a))),
                               np.sqrt(lam).sum(), rtol=1e-12)
    naive = jax.grad(lambda m: jnp.sum(jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(m), 0.0))))
    assert not np.isfinite(np.asarray(naive(jnp.asarray(np.diag(lam))))).all()   # exact zeros
    np.testing.assert_allclose(np.asarray(jax.grad(S.distribution.trace_sqrtm)(2 * jnp.eye(4))),
                               np.eye(4) / (2 * np.sqrt(2)), rtol=1e-12, atol=1e-15)


def _whitened(rng, m, c, scale=1.0, shift=0.0):
    """m samples whose population covariance is exactly scale²·I (up to rounding)."""
    x = rng.normal(size=(m, c))
    x = x - x.mean(0)
    lam, u = np.linalg.eigh(np.cov(x.T, bias=True))
    return (x @ u / np.sqrt(lam) @ u.T) * scale + shift


def test_gaussian_w2_gradient_degenerate_spectra(x64):
    """The custom JVP of tr(·)^½ (Lewis' spectral gradient) against central differences
    (float64, rtol 1e-6 as above) where eigh's own derivative divides by λ_i − λ_j or by √0:

    * repeated eigenvalues: Σ = I and Σ_s = 2I, so Σ_s^½ Σ Σ_s^½ = 2I (one eigenvalue, C-fold);
      here W2·C = ‖Δμ‖² + tr Σ + 2C − 2√2 tr Σ^½, so ∂(W2·C)/∂Σ = (1 − √2) I at Σ = I and
      the gradient is also checked in closed form, ∂L/∂x_p = (2/M)[Δμ + (1 − √2)(x_p − μ)]/C
      (rtol 1e-9);
    * rank-deficient output: M = 3 positions in C = 5 channels (Σ of rank 2);
    * a dead channel (all zero) in both images, as in deep layers of small images.
    """
    rng = np.random.default_rng(40)
    m = S.get_style_loss("gaussian-w2")
    c = 4
    x = _whitened(rng, 30, c, 1.0, 0.3)
    y = _whitened(rng, 28, c, np.sqrt(2.0), -0.2)
    t = m.target(jnp.asarray(y[:, None, :]))
    f = x[:, None, :]

    def loss(a):
        return m.loss(a, t, hyper={}, key=None)

    g = _fd_check(loss, f, 41)
    mu = x.mean(0)
    want = 2.0 / 30 * ((mu - y.mean(0)) + (1 - np.sqrt(2)) * (x - mu)) / c
    np.testing.assert_allclose(g[:, 0, :], want, rtol=RTOL64, atol=1e-13)

    f, s = rng.normal(size=(1, 3, 5)), rng.normal(size=(4, 5, 5))      # rank(Σ) = 2 < C = 5
    t = m.target(jnp.asarray(s))
    _fd_check(lambda a: m.loss(a, t, hyper={}, key=None), f, 42)
    np.testing.assert_allclose(float(m.loss(jnp.asarray(f), t, hyper={}, key=None)),
                               _gauss_w2_np(f, s), rtol=1e-8)

    f, s = _maps(43)
    f[..., 1] = 0.0
    s[..., 1] = 0.0
    t = m.target(jnp.asarray(s))
    _fd_check(lambda a: m.loss(a, t, hyper={}, key=None), f, 44)


def test_float32_dead_channels_and_constant_maps():
    """float32 ReLU-like maps (64×64×16, values to ~300, one all-zero channel in both, one
    dead only in the output): finite, positive values and finite gradients for every new
    method; constant maps F = 3, style = 1 give the closed forms (rtol 1e-5, float32 sums of
    4096 equal terms): sliced (Σ_c v_c)² averaged over directions, histogram 4, Gaussian
    W2 ‖Δμ‖²/C = 4, CMD |σ(3) − σ(1)|·√C."""
    rng = np.random.default_rng(45)
    shape = (64, 64, 16)
    f = np.maximum(rng.standard_normal(shape, dtype=np.float32) * 100.0, 0.0)
    s = np.maximum(rng.standard_normal(shape, dtype=np.float32) * 80.0 + 10.0, 0.0)
    f[..., 0] = s[..., 0] = 0.0
    f[..., 1] = 0.0
    key = jax.random.PRNGKey(46)
    for name in NEW:
        m = S.get_style_loss(name)
        t = m.target(jnp.asarray(s))
        v, g = jax.jit(jax.value_and_grad(lambda a: m.loss(a, t, hyper={}, key=key)))(
            jnp.asarray(f))
        assert np.isfinite(float(v)) and float(v) > 0.0, name
        assert bool(jnp.all(jnp.isfinite(g))), name
    v = np.asarray(S.distribution.sliced_directions(key, 16))
    want = {"sliced-wasserstein": np.mean((2.0 * v.sum(0)) ** 2), "histogram": 4.0,
            "gaussian-w2": 4.0,
            "cmd": abs(1 / (1 + np.exp(-3.0)) - 1 / (1 + np.exp(-1.0))) * 4.0}
    for name in NEW:
        got = float(_loss(name, np.full(shape, 3.0, np.float32), np.full(shape, 1.0, np.float32),
                          key=key))
        np.testing.assert_allclose(got, want[name], rtol=1e-5, err_msg=name)


# --------------------------------------------------------------------------- jit and vmap


@pytest.mark.parametrize("name", NEW)
def test_jit_and_vmap_over_features(name):
    """jit(vmap(loss)) over a batch of 3 feature maps (with and without masks) equals the
    unbatched loss at each (float32, rtol 1e-5: batching may reorder the reductions)."""
    m = S.get_style_loss(name)
    rng = np.random.default_rng(50)
    fs = jnp.asarray(rng.normal(size=(3, 6, 5, 4)), jnp.float32)
    ws = jnp.asarray(rng.uniform(0.2, 1.5, size=(3, 6, 5)), jnp.float32)
    t = m.target(jnp.asarray(rng.normal(size=(4, 7, 4)), jnp.float32))
    key = jax.random.PRNGKey(51)

    def one(f, w):
        return m.loss(f, t, hyper={}, key=key, mask=w)

    batched = jax.jit(jax.vmap(one))(fs, ws)
    plain = jax.jit(jax.vmap(lambda f: m.loss(f, t, hyper={}, key=key)))(fs)
    for i in range(3):
        np.testing.assert_allclose(float(batched[i]), float(one(fs[i], ws[i])), rtol=1e-5)
        np.testing.assert_allclose(float(plain[i]), float(one(fs[i], None)), rtol=1e-5)


def test_vmap_over_keys_and_hyper():
    """Sliced: vmap over keys draws per-key directions (each equals its unbatched value, rtol
    1e-5, and they differ).  CMD: vmap over traced order weights (rtol 1e-5)."""
    rng = np.random.default_rng(52)
    f = jnp.asarray(rng.normal(size=(6, 5, 4)), jnp.float32)
    s = jnp.asarray(rng.normal(size=(4, 7, 4)), jnp.float32)
    sw = S.get_style_loss("sliced-wasserstein")
    t = sw.target(s)
    keys = jax.random.split(jax.random.PRNGKey(53), 4)
    vals = np.asarray(jax.jit(jax.vmap(lambda k: sw.loss(f, t, hyper={}, key=k)))(keys))
    for i in range(4):
        np.testing.assert_allclose(vals[i], float(sw.loss(f, t, hyper={}, key=keys[i])), rtol=1e-5)
    assert len(set(vals.tolist())) == 4
    cmd = S.get_style_loss("cmd")
    t = cmd.target(s)
    w1 = jnp.asarray([1.0, 0.0, 2.0])
    vals = np.asarray(jax.jit(jax.vmap(lambda a: cmd.loss(f, t, hyper={"w1": a}, key=None)))(w1))
    for i, a in enumerate([1.0, 0.0, 2.0]):
        np.testing.assert_allclose(vals[i], float(cmd.loss(f, t, hyper={"w1": a}, key=None)),
                                   rtol=1e-5)
    assert vals[0] != vals[1]


# --------------------------------------------------------------------------- registry, end to end


def test_registry_fields():
    """Only the sliced loss samples; all four ignore positions; each λ records how it was
    measured (the same script and start as the built-ins)."""
    for name in NEW:
        m = S.get_style_loss(name)
        assert m.uses_key == (name == "sliced-wasserstein")
        assert m.permutation_invariant and m.reference
        assert m.scale > 0.0 and "uniform noise" in m.scale_source
        assert m.paper_scale is None and all(isinstance(v, float) for v in m.hyper.values())
    assert S.get_style_loss("cmd").hyper == {f"w{k}": 1.0 for k in range(1, 6)}


def test_style_loss_terms_all_new_methods(x64):
    """All four through style_loss_terms on two layers: jit, per-layer keys, masks of ones
    (rtol 1e-12 against the plain terms) and a finite gradient."""
    rng = np.random.default_rng(60)
    feats = {"a": jnp.asarray(rng.normal(size=(6, 6, 3)) + 0.5),
             "b": jnp.asarray(rng.normal(size=(4, 4, 5)) + 0.5)}
    style = {"a": jnp.asarray(rng.normal(size=(5, 6, 3))),
             "b": jnp.asarray(rng.normal(size=(3, 4, 5)))}
    targets = S.style_targets(NEW, style)
    lw = jnp.asarray([1.0, 0.5])
    key = jax.random.PRNGKey(61)
    hyper = default_hyper(NEW)
    terms = jax.jit(lambda fs, masks: S.style_loss_terms(NEW, fs, targets, lw, hyper, key,
                                                         masks=masks))
    plain = np.asarray(terms(feats, None))
    ones = {k: jnp.ones(v.shape[:2]) for k, v in feats.items()}
    np.testing.assert_allclose(np.asarray(terms(feats, ones)), plain, rtol=1e-12)
    assert np.all(np.isfinite(plain)) and np.all(plain > 0)
    g = jax.grad(lambda fs: jnp.sum(terms(fs, None)))(feats)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in g.values())


@pytest.mark.parametrize("losses", [(n,) for n in NEW] + [("gram", "gaussian-w2"),
                                                            ("histogram", "cmd", "bn")],
                         ids=lambda v: "+".join(v))
def test_stylize_end_to_end(tiny_vgg, losses):
    """Each method (and fusions with built-ins) through the registry: nstjax.stylize on the
    tiny random VGG at 32×32, 3 Adam steps, gives a finite loss and history; the sliced loss
    also with directions redrawn at every evaluation (Objective(resample=True))."""
    from conftest import make_image
    content = jnp.asarray(make_image(32, 32, seed=1))
    style = jnp.asarray(make_image(32, 32, seed=2))
    runs = [False, True] if "sliced-wasserstein" in losses else [False]
    for resample in runs:
        objective = nstjax.Objective(style_losses=losses, resample=resample)
        res = nstjax.stylize(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                             objective=objective,
                             solver=nstjax.Solver(optimizer="adam", max_iter=3))
        hist = np.asarray(res.history)[: int(res.n_iter)]
        assert int(res.n_iter) == 3 and np.all(np.isfinite(hist))
        assert np.isfinite(float(res.loss)) and float(res.terms["style"]) > 0.0


def test_batched_w2_gradient_equals_each_members():
    """Under ``vmap`` the spectrum is taken one member after another (``_eigh``'s rule):
    the same values and gradients as each member alone."""
    from nstjax.losses.distribution import gaussian_target, gaussian_w2

    key = jax.random.PRNGKey(3)
    feats = jax.random.normal(key, (3, 6, 5, 8))
    target = gaussian_target(jax.random.normal(jax.random.PRNGKey(4), (7, 6, 8)))
    grad = jax.grad(lambda f: gaussian_w2(f, target))
    batched = jax.vmap(grad)(feats)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(grad(feats[i])),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.integration
@pytest.mark.real_weights
def test_a_gaussian_w2_sweep_at_five_layers_finishes(tmp_path):
    """Two members, W2 at relu1_1 … relu5_1: several batched ``eigh`` in one CPU program
    used to wait on each other forever (a subprocess, so that a hang fails here)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "nstjax", "sweep", "--demo", "--size", "48", "--style-loss",
           "gaussian-w2", "--style-weight", "1,2", "--iters", "2", "--no-progress",
           "--output", str(tmp_path / "sweep")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "sweep").glob("*.png"))) >= 2
