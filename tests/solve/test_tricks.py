"""crowsonkb/style-transfer-pytorch's practical tricks: the moving average of the iterate,
scaled L2 pooling, and Adam's moments carried across coarse-to-fine sizes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nstjax
from nstjax.model.pooling import L2_POOL_SCALE, l2_pool2x2
from nstjax.run import multiscale
from nstjax.solve.warm import carry_moments
from tests.conftest import make_image

# ------------------------------------------------------------ moving average of iterates


def _quartic(x):
    return jnp.sum((x - 0.3) ** 4 + 0.5 * (x - 0.6) ** 2)


@pytest.mark.parametrize("beta", [0.5, 0.9])
def test_the_averaged_iterate_is_adams_bias_corrected_average(beta):
    """After n Adam steps the output is ``(1−β) Σ_{k=0..n} β^{n−k} x_k / (1−β^{n+1})``
    (Kingma & Ba 2015 Alg. 1 applied to the iterate), the x_k from plain runs of k steps
    (the optimiser is deterministic): float32 rounding, 1e-6."""
    x0 = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (5, 4, 3)), jnp.float32)
    opt = nstjax.adam(lr=0.05)
    n = 12
    iterates = [np.asarray(x0, np.float64)] + [
        np.asarray(nstjax.minimize(_quartic, x0, opt, max_iter=k).x, np.float64)
        for k in range(1, n + 1)]
    weights = np.array([(1 - beta) * beta ** (n - k) for k in range(n + 1)])
    expected = np.tensordot(weights, np.stack(iterates), 1) / (1 - beta ** (n + 1))
    res = nstjax.minimize(_quartic, x0, opt, max_iter=n, average=beta)
    np.testing.assert_allclose(np.asarray(res.x), expected, atol=1e-6)
    # the reported loss is the objective at the averaged image, not at the last iterate
    np.testing.assert_allclose(float(res.value), float(_quartic(res.x)), rtol=1e-6)
    plain = nstjax.minimize(_quartic, x0, opt, max_iter=n)
    assert np.abs(np.asarray(res.x) - np.asarray(plain.x)).max() > 1e-4


def test_no_average_keeps_the_last_iterate_exactly():
    x0 = jnp.full((4, 4, 3), 0.9, jnp.float32)
    opt = nstjax.adam(lr=0.05)
    a = nstjax.minimize(_quartic, x0, opt, max_iter=7)
    b = jax.jit(lambda x: nstjax.minimize(_quartic, x, opt, max_iter=7, average=0.0))(x0)
    np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))


def test_the_average_is_a_traced_solver_field_and_checked():
    leaves = jax.tree_util.tree_leaves(nstjax.Solver(average=0.99))
    assert 0.99 in leaves
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="average"):
            nstjax.Solver(average=bad)


def test_stylize_with_an_average_returns_the_averaged_image(tiny_vgg):
    content, style = (jnp.asarray(make_image(32, 32, seed=s)) for s in (1, 2))
    kw = dict(key=jax.random.PRNGKey(0), weights=nstjax.loss_weights(
        nstjax.Objective(), style_weight=1e3))
    last = nstjax.stylize(tiny_vgg, content, style,
                          solver=nstjax.Solver(optimizer="adam", max_iter=6, lr=0.05), **kw)
    avg = nstjax.stylize(tiny_vgg, content, style, solver=nstjax.Solver(
        optimizer="adam", max_iter=6, lr=0.05, average=0.5), **kw)
    assert np.abs(np.asarray(avg.image) - np.asarray(last.image)).max() > 1e-4
    # the averaged image lies between the start and the last iterate, on average
    start_gap = np.abs(np.asarray(last.image) - np.asarray(content)).mean()
    assert np.abs(np.asarray(avg.image) - np.asarray(content)).mean() < start_gap
    np.testing.assert_array_equal(np.asarray(avg.history), np.asarray(last.history))


# ------------------------------------------------------------------------- L2 pooling


def test_l2_pooling_is_the_scaled_root_of_the_windows_sum_of_squares():
    """``s · √(a² + b² + c² + d²)`` per 2×2 window (PyTorch's ``LPPool2d(2, 2)``), odd
    edges dropped; NumPy, 1e-6."""
    x = np.random.default_rng(1).uniform(0, 2, (2, 7, 9, 3)).astype(np.float32)
    windows = x[:, :6, :8].reshape(2, 3, 2, 4, 2, 3)
    expected = L2_POOL_SCALE * np.sqrt((windows.astype(np.float64) ** 2).sum(axis=(2, 4)))
    np.testing.assert_allclose(np.asarray(l2_pool2x2(jnp.asarray(x))), expected, rtol=1e-6)


def test_l2_pooling_gradient_is_finite_on_dead_windows():
    """A window of zeros (after a ReLU) has gradient 0; elsewhere ``s·x/‖window‖``."""
    x = np.zeros((2, 4, 1), np.float32)       # left window all zero; right: 3, 4, 0, 0
    x[0, 2, 0], x[0, 3, 0] = 3.0, 4.0
    x = jnp.asarray(x)
    g = jax.grad(lambda v: jnp.sum(l2_pool2x2(v)))(x)
    assert np.isfinite(np.asarray(g)).all()
    win = np.asarray(x)[:, 2:, 0]
    np.testing.assert_allclose(np.asarray(g)[:, 2:, 0], L2_POOL_SCALE * win / 5.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(g)[:, :2, 0], 0.0)


def test_l2_pooling_runs_through_the_objective(tiny_vgg):
    objective = nstjax.Objective(pooling="l2")
    content = jnp.asarray(make_image(32, 32, seed=1))
    res = nstjax.stylize(tiny_vgg, content, jnp.asarray(make_image(32, 32, seed=2)),
                         key=jax.random.PRNGKey(0), objective=objective,
                         solver=nstjax.Solver(optimizer="adam", max_iter=3))
    assert np.isfinite(np.asarray(res.history)).all()
    with pytest.raises(ValueError, match="pooling"):
        nstjax.Objective(pooling="l3")


# -------------------------------------------------------- Adam's moments across sizes


def test_carried_moments_are_resized_and_keep_the_step_count():
    """Same shape: the previous moments exactly; a new shape: ``mu`` bicubic, ``nu``
    bilinear clipped at 0 (crowsonkb's ``scale_adam``), the count kept."""
    rng = np.random.default_rng(2)
    small = jnp.zeros((6, 8, 3))
    prev = optax.adam(0.1).init(small)
    prev = optax.tree_utils.tree_set(
        prev, mu=jnp.asarray(rng.normal(size=(6, 8, 3)), jnp.float32),
        nu=jnp.asarray(rng.uniform(0, 1, (6, 8, 3)), jnp.float32), count=jnp.int32(17))
    same = carry_moments(optax.adam(0.1).init(small), prev)
    for name in ("mu", "nu", "count"):
        np.testing.assert_allclose(np.asarray(optax.tree_utils.tree_get(same, name)),
                                   np.asarray(optax.tree_utils.tree_get(prev, name)),
                                   atol=1e-6)
    big = carry_moments(optax.adam(0.1).init(jnp.zeros((12, 16, 3))), prev)
    mu = np.asarray(optax.tree_utils.tree_get(big, "mu"))
    nu = np.asarray(optax.tree_utils.tree_get(big, "nu"))
    assert mu.shape == nu.shape == (12, 16, 3) and (nu >= 0).all()
    assert int(optax.tree_utils.tree_get(big, "count")) == 17
    # a constant field stays constant through either resize
    flat = optax.tree_utils.tree_set(prev, mu=jnp.full((6, 8, 3), 0.25),
                                     nu=jnp.full((6, 8, 3), 0.5))
    grown = carry_moments(optax.adam(0.1).init(jnp.zeros((12, 16, 3))), flat)
    np.testing.assert_allclose(np.asarray(optax.tree_utils.tree_get(grown, "mu")), 0.25,
                               atol=1e-6)


def test_multiscale_hands_each_rung_the_last_rungs_moments(tiny_vgg, monkeypatch):
    content = jnp.asarray(make_image(48, 64, seed=1))
    style = jnp.asarray(make_image(40, 40, seed=2))
    seen = []
    real = multiscale.stylize

    def spy(*args, warm_start=None, keep_opt_state=False, **kw):
        out = real(*args, warm_start=warm_start, keep_opt_state=keep_opt_state, **kw)
        seen.append((warm_start, keep_opt_state, out.opt_state))
        return out

    monkeypatch.setattr(multiscale, "stylize", spy)
    solver = nstjax.Solver(optimizer="adam", max_iter=5, lr=0.02)
    result = multiscale.stylize_multiscale(tiny_vgg, content, style,
                                           key=jax.random.PRNGKey(0), min_size=48,
                                           iters=[3, 4], solver=solver, carry_moments=True)
    (w0, keep0, state0), (w1, keep1, state1) = seen
    assert w0 is None and keep0 and not keep1 and state1 is None
    assert w1 is state0
    assert optax.tree_utils.tree_get(w1, "mu").shape == (36, 48, 3)
    assert int(optax.tree_utils.tree_get(w1, "count")) == 3
    assert result.opt_state is None and all(s.result.opt_state is None for s in result.stages)
    with pytest.raises(ValueError, match="adam"):
        multiscale.stylize_multiscale(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                                      min_size=48, iters=2, carry_moments=True,
                                      solver=dataclasses.replace(solver, optimizer="plbfgs"))


def test_average_pooling_by_reshape_is_flaxs():
    """The reshaped mean equals ``nn.avg_pool`` (VALID, 2×2, stride 2) on odd sizes, values
    and gradients (float32, 1e-6)."""
    import flax.linen as nn

    from nstjax.model.pooling import avg_pool2x2

    x = jnp.asarray(np.random.default_rng(4).normal(size=(1, 9, 7, 5)), jnp.float32)
    ref = nn.avg_pool(x, (2, 2), strides=(2, 2))
    np.testing.assert_allclose(np.asarray(avg_pool2x2(x)), np.asarray(ref), atol=1e-6)
    w = jnp.asarray(np.random.default_rng(5).normal(size=ref.shape), jnp.float32)
    g = jax.grad(lambda v: jnp.sum(w * avg_pool2x2(v)))(x)
    g_ref = jax.grad(lambda v: jnp.sum(w * nn.avg_pool(v, (2, 2), strides=(2, 2))))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=1e-6)


def test_snapshots_of_an_averaged_run_show_the_average(tiny_vgg):
    """The picture a snapshot shows is the output so far: the moving average, not the
    last iterate (Adam stays in the box, so the final average is the result)."""
    content, style = (jnp.asarray(make_image(32, 32, seed=s)) for s in (1, 2))
    shots = []
    res = nstjax.stylize(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                         solver=nstjax.Solver(optimizer="adam", max_iter=4, lr=0.05,
                                              average=0.5),
                         callbacks=nstjax.Callbacks(snapshot=lambda i, x: shots.append(x),
                                                    snapshot_every=4))
    np.testing.assert_allclose(shots[-1], np.asarray(res.image), atol=1e-6)
