"""The faithful mode (issue 12): li2017's code's per-layer factors, resampled Gaussian pairs,
the image stop rule, the grey init and poly's c = 0.

References are NumPy, written from the equations and from the released MXNet code
(github.com/lyttonhao/Neural-Style-MMD: ``mmd_loss.py`` and ``bn_loss.py`` backward passes,
``neural-style.py`` ``get_loss`` grad scales), not from nstjax's helpers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image

import nstjax
from nstjax.cli import build_parser, common
from nstjax.cli.inputs import Inputs
from nstjax.losses import get_style_loss, mmd, style_loss_terms, style_targets
from nstjax.objective import terms as obj
from nstjax.run.start import check_solver
from nstjax.objective.config import Objective, loss_weights
from nstjax.run.transfer import GREY_NOISE, GREY_RGB, initial_image
from nstjax.solve import minimize as minimize_mod
from nstjax.solve import optimize
from nstjax.solve.solver import Solver

METHODS = ("mmd-linear", "mmd-poly", "mmd-gauss", "bn")
SHAPES = {"relu1_1": (6, 5, 4), "relu2_1": (3, 4, 8)}      # M = 30, N = 4; M = 12, N = 8
KEY = jax.random.PRNGKey(3)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _features(seed):
    rng = np.random.default_rng(seed)
    return {l: np.maximum(rng.standard_normal(s) + 0.3, 0.0) for l, s in SHAPES.items()}


def _pairs(method_index, layer_index, m):
    """The sampled pairs of layer ``j`` (style_loss_terms' key schedule)."""
    keys = jax.random.split(jax.random.fold_in(KEY, method_index), len(SHAPES))
    ix, iy = mmd.gaussian_pairs(m, m, keys[layer_index])
    return np.asarray(ix), np.asarray(iy)


def _numpy_losses(f, s, normalization):
    """Σ_l w_l · factor · loss for the four methods, from the equations (c = 0, σ² = mean)."""
    out = np.zeros(4)
    for j, layer in enumerate(SHAPES):
        x, y = f[layer].reshape(-1, f[layer].shape[-1]), s[layer].reshape(-1, s[layer].shape[-1])
        m, n = x.shape
        w = (1.0, 2.0)[j]
        linear = np.sum((x.mean(0) - y.mean(0)) ** 2)                       # ‖μx − μy‖²
        poly = np.sum((x.T @ x / m - y.T @ y / m) ** 2)                     # c = 0
        ix, iy = _pairs(2, j, m)
        xa, xb, ya, yb = x[ix[:, 0]], x[ix[:, 1]], y[iy[:, 0]], y[iy[:, 1]]
        d = np.stack([((a - b) ** 2).sum(1) for a, b in ((xa, xb), (ya, yb), (xa, yb),
                                                          (xb, ya))])
        k = np.exp(-d / (2 * d.mean()))
        gauss = np.mean(k[0] + k[1] - k[2] - k[3])                          # MMD²_l
        bn_sum = np.sum((x.mean(0) - y.mean(0)) ** 2 + (x.std(0) - y.std(0)) ** 2)
        if normalization == "paper":     # the code's effective weights in MMD² units
            terms = (m / (2 * n) * linear, m / (4 * n * n) * poly, gauss / (4 * n),
                     m / (2 * n) * bn_sum)
        else:                            # ours: Z = N, 4N², 1 and eq. 11's 1/N
            terms = (linear / n, poly / (4 * n * n), gauss, bn_sum / n)
        out += w * np.asarray(terms)
    return out


@pytest.mark.parametrize("normalization", ["nstjax", "paper"])
def test_per_layer_factors_equal_the_hand_computed_ones(x64, normalization):
    f, s = _features(0), _features(1)
    targets = style_targets(METHODS, {l: jnp.asarray(v) for l, v in s.items()})
    hyper = {m: {} for m in METHODS}
    got = jax.jit(lambda feats: style_loss_terms(
        METHODS, feats, targets, jnp.asarray([1.0, 2.0]), hyper, KEY,
        normalization=normalization))({l: jnp.asarray(v) for l, v in f.items()})
    np.testing.assert_allclose(np.asarray(got), _numpy_losses(f, s, normalization), rtol=1e-10)


def _mxnet_backward(method, x, y):
    """The released code's gradient on the generated image's samples ``x: [M, N]`` (style
    ``y``), with style weight and w_k 1: the kernel's backward times get_loss' grad_scale."""
    m, n = x.shape
    if method == "mmd-linear":                       # mmd_loss.py, kernel 'linear'
        return (x.sum(0) - y.sum(0))[None, :].repeat(m, 0) / (n * m)
    if method == "mmd-poly":                         # kernel 'poly', c = 0
        return x @ (x.T @ x - y.T @ y) / (n * m * n)
    if method == "bn":                               # bn_loss.py; data holds 2M rows
        ux, uy = x.mean(0), y.mean(0)
        vx, vy = x.std(0), y.std(0)
        dux = 2.0 / (2 * m) * (ux - uy)[None, :].repeat(m, 0)
        dvx = 2.0 / (2 * m) * ((vx - vy) / vx)[None, :] * (x - ux)
        return (dux + dvx) * (n * m / n) / n
    raise ValueError(method)


@pytest.mark.parametrize("method", ["mmd-linear", "mmd-poly", "bn"])
def test_paper_gradient_is_the_released_codes(x64, method):
    # The paper mode's gradient (loss × factor) equals the MXNet backward times its scale.
    f, s = _features(4)["relu1_1"], _features(5)["relu1_1"]
    entry = get_style_loss(method)
    target = entry.target(jnp.asarray(s))

    def loss(a):
        n, m = a.shape[-1], a.shape[0] * a.shape[1]
        return entry.loss(a, target, hyper={}, key=KEY) * entry.paper_factor(n, m)

    got = np.asarray(jax.grad(loss)(jnp.asarray(f))).reshape(-1, f.shape[-1])
    want = _mxnet_backward(method, f.reshape(-1, f.shape[-1]), s.reshape(-1, s.shape[-1]))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_paper_gaussian_gradient_is_the_released_codes(x64):
    # mmd_loss.py, kernel 'gaussian': k = exp(−γ d²) with γ held constant; ours with
    # σ² = 1/(2γ) is the same kernel.  Same pairs: x0 = x_a, x1 = x_b, y0 = y_a, y1 = y_b.
    f, s = _features(6)["relu1_1"], _features(7)["relu1_1"]
    x, y = f.reshape(-1, 4), s.reshape(-1, 4)
    m, n = x.shape
    key = jax.random.PRNGKey(11)
    ix, iy = (np.asarray(a) for a in mmd.gaussian_pairs(m, m, key))
    x0, x1, y0, y1 = x[ix[:, 0]], x[ix[:, 1]], y[iy[:, 0]], y[iy[:, 1]]
    sq = lambda a, b: ((a - b) ** 2).sum(1, keepdims=True)  # noqa: E731
    gamma = 2 * len(ix) * 2 / sum(sq(a, b).sum() for a, b in ((x0, x1), (y0, y1), (x0, y1),
                                                               (y0, x1)))
    kxx, kxy, kyx = (np.exp(-gamma * sq(a, b)) for a, b in ((x0, x1), (x0, y1), (y0, x1)))
    want = np.zeros_like(x)
    want[ix[:, 0]] = gamma * (-kxx * (x0 - x1) + kxy * (x0 - y1))
    want[ix[:, 1]] = gamma * (-kxx * (x1 - x0) + kyx * (x1 - y0))
    want /= n * m                                                  # grad_scale 1/(N·M)
    entry = get_style_loss("mmd-gauss")

    def loss(a):
        return entry.loss(a, jnp.asarray(s), hyper={"sigma2": 1 / (2 * gamma)},
                          key=key) * entry.paper_factor(n, m)

    got = np.asarray(jax.grad(loss)(jnp.asarray(f))).reshape(-1, 4)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_paper_scales_and_validation():
    o = Objective(style_losses=METHODS + ("gram",), normalization="paper")
    np.testing.assert_allclose(loss_weights(o).style_scales, [1e3, 0.05, 1.5e14, 500, 0.3],
                               rtol=1e-6)         # half the code's w_style; gram: registry
    with pytest.raises(ValueError, match="normalization"):
        Objective(normalization="mxnet")


def test_resampled_pairs_differ_and_average_to_the_u_statistic(tiny_vgg):
    # li2017's code draws new pairs at every forward pass.  With resample=True every
    # evaluation at a new image draws new pairs; the mean over evaluations is the unbiased
    # U-statistic (1/(M(M−1)) Σ_{i≠i'} k + ... − 2/M² Σ k(x, y)), here at a fixed σ².
    image, style = make_image(16, 16, seed=1), make_image(16, 16, seed=2)
    layer = "relu1_1"
    feats = lambda im: nstjax.extract_features(tiny_vgg, im, [layer])[layer]  # noqa: E731
    x = np.asarray(feats(image), np.float64).reshape(-1, 4)
    y = np.asarray(feats(style), np.float64).reshape(-1, 4)
    sigma2 = 2.0 * np.mean(((x[:, None] - y[None]) ** 2).sum(-1))
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma2))  # noqa
    m = len(x)
    u_stat = ((k(x, x).sum() - m) / (m * (m - 1)) + (k(y, y).sum() - m) / (m * (m - 1))
              - 2 * k(x, y).mean())
    evals = 1500
    # Distinct images with the same features to within ~1e-5: one pixel moved by k·1e-6
    # (k < 1500) changes the hash, not the statistic (its spread over draws is ~1e-2).
    bumps = jnp.arange(evals, dtype=jnp.float32) * 1e-6

    def values(bumps, resample):
        o = Objective(style_layers=(layer,), content_layers=(layer,),
                      style_losses=("mmd-gauss",), resample=resample)
        w = loss_weights(o, content_weight=0.0, style_weight=1.0, style_scales=(1.0,),
                         tv_weight=0.0, hyper={"mmd-gauss.sigma2": sigma2})
        targets = obj.compute_targets(tiny_vgg, jnp.asarray(image), [jnp.asarray(style)],
                                      objective=o)

        def one(bump):
            im = jnp.asarray(image).at[0, 0, 0].add(bump)
            return obj.total_loss(im, tiny_vgg, targets, w, KEY, objective=o)
        return np.asarray(jax.jit(jax.vmap(one))(bumps), np.float64)

    resampled = values(bumps, True)
    fixed = values(bumps[:50], False)
    assert len(np.unique(resampled)) > 0.9 * evals          # new pairs nearly every time
    assert np.ptp(fixed) < 1e-4 * np.ptp(resampled)         # fixed pairs: one estimate
    se = resampled.std() / np.sqrt(evals)
    assert abs(resampled.mean() - u_stat) < 4 * se, (resampled.mean(), u_stat, se)


def test_resample_is_refused_with_a_line_search(tiny_vgg):
    image = make_image(16, 16)
    o = Objective(style_losses=("mmd-gauss",), resample=True)
    for name in ("plbfgs", "lbfgsb", "lbfgs", "optax-lbfgs"):
        with pytest.raises(ValueError, match="line search"):
            check_solver(o, name)
    with pytest.raises(ValueError, match="adam, rmsprop or gd"):
        nstjax.stylize(tiny_vgg, image, image, key=KEY, objective=o,
                       solver=Solver("plbfgs", max_iter=1))
    check_solver(o, "adam")
    check_solver(o, "rmsprop")      # first-order, registered without a line search
    check_solver(Objective(style_losses=("mmd-gauss",)), "plbfgs")


def test_tol_x_stops_where_the_image_change_falls_below_it():
    # Gradient descent on f = ½‖x − a‖² (the optimiser sees f/f(x₀), so the step is
    # η' = η/f(x₀)): x_k − a = (1 − η')^k (x₀ − a), the step k has length
    # η'(1 − η')^{k−1}‖x₀ − a‖, and the rule stops at the first k where it is below
    # tol·‖x_{k−1}‖.  The stop iteration is predicted in NumPy from this closed form.
    a = np.linspace(0.2, 0.8, 12).astype(np.float32)
    x0 = np.full(12, 0.5, np.float32) + np.float32(0.3) * np.sin(np.arange(12)).astype(np.float32)
    f0 = 0.5 * np.sum((x0 - a) ** 2)
    lr, tol = 0.05 * f0, 0.02
    eta = lr / f0
    d0 = np.linalg.norm(x0 - a)
    want = None
    for kk in range(1, 500):
        prev = a + (1 - eta) ** (kk - 1) * (x0 - a)
        if eta * (1 - eta) ** (kk - 1) * d0 <= tol * np.linalg.norm(prev):
            want = kk
            break
    res = minimize_mod.minimize(lambda x: 0.5 * jnp.sum((x - a) ** 2), jnp.asarray(x0),
                            optimize.make_optimizer("gd", lr=lr), max_iter=500, tol_x=tol)
    assert int(res.status) == minimize_mod.Status.CONVERGED_X
    assert int(res.n_iter) == want


def test_grey_init_is_the_codes_mean_pixel():
    content = jnp.zeros((20, 30, 3))
    x = np.asarray(initial_image(content, [], "grey", KEY))
    assert x.shape == (20, 30, 3)
    dev = x - np.asarray(GREY_RGB)
    assert np.all(np.abs(dev) <= GREY_NOISE * 1.0001) and dev.std() > GREY_NOISE / 3
    np.testing.assert_allclose(x.mean(axis=(0, 1)), np.array([123.68, 116.779, 103.939]) / 255,
                               atol=GREY_NOISE / 5)
    np.testing.assert_array_equal(x, np.asarray(initial_image(content, [], "grey", KEY)))


def test_poly_default_c_is_zero_so_poly_is_gram(x64):
    """li2017 §3.2 uses c = 0; then 'mmd-poly' is Gatys' ``1/(4N²M²) Σ(G − A)²`` (NumPy)."""
    assert get_style_loss("mmd-poly").hyper == {"c": 0.0}
    f, s = _features(8)["relu1_1"], _features(9)["relu1_1"]
    x, y = (np.asarray(a, np.float64).reshape(-1, a.shape[-1]) for a in (f, s))
    n, m = x.shape[1], x.shape[0]
    gatys = (((x.T @ x) - (y.T @ y)) ** 2).sum() / (4 * n * n * m * m)
    poly = get_style_loss("mmd-poly")
    np.testing.assert_allclose(
        float(poly.loss(jnp.asarray(f), poly.target(jnp.asarray(s)), hyper={}, key=KEY)),
        gatys, rtol=1e-9)


def test_flags_reach_the_objective():
    _, parsers = build_parser()
    args = parsers["stylize"].parse_args(["--content", "c.png", "--style", "s.png",
                                          "--normalization", "paper", "--resample",
                                          "--init", "grey"])
    objective, _ = common.build_objective(args)
    assert objective.normalization == "paper" and objective.resample
    assert Inputs.of(args).paths == [common.Path("c.png"), common.Path("s.png")]


@pytest.mark.parametrize("normalization, gamma_of", [("paper", lambda s2: 1.0 / s2),
                                                      ("nstjax", lambda s2: 0.5 / s2)])
def test_paper_mode_uses_the_codes_gaussian_kernel(normalization, gamma_of):
    """li2017's code: ``exp(−γ d)`` with ``γ = 1/mean d`` over the sampled pairs; the
    paper's text (our default): ``exp(−d/(2σ²))``, ``σ² = mean d``.  Two output positions
    with equal features and two style positions make one pair whose estimate does not depend
    on the draw: ``k(x, x) + k(y₀, y₁) − k(x, y₀) − k(x, y₁)``, in NumPy (rtol 1e-6)."""
    x = np.array([0.3, -0.2, 0.5], np.float64)
    y0, y1 = np.array([1.0, 0.4, -0.3]), np.array([-0.6, 0.2, 0.9])
    d = lambda a, b: float(((a - b) ** 2).sum())  # noqa: E731
    ds = [0.0, d(y0, y1), d(x, y0), d(x, y1)]
    g = gamma_of(np.mean(ds))
    k = [np.exp(-g * v) for v in ds]
    expected = k[0] + k[1] - k[2] - k[3]
    o = Objective(style_losses=("mmd-gauss",), normalization=normalization)
    w = loss_weights(o)
    f = jnp.asarray(np.stack([x, x]).reshape(1, 2, 3), jnp.float32)
    s = jnp.asarray(np.stack([y0, y1]).reshape(1, 2, 3), jnp.float32)
    m = get_style_loss("mmd-gauss")
    got = m.loss(f, m.target(s), hyper=w.hyper["mmd-gauss"], key=KEY)
    assert float(got) == pytest.approx(expected, rel=1e-6)
