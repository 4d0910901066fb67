"""Objective, gradients and optimiser drivers (issue 3)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image

import nstjax
from nstjax.losses import core as losses
from nstjax.objective.config import Objective
from nstjax.solve import optimize
from nstjax.solve.solver import Solver


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_gram_loss_gradient_is_bordag2020_closed_form(x64):
    # bordag2020 eq. 6: dE/dF = (1/(N² M²)) (G − A) F with F as N × M.
    rng = np.random.default_rng(0)
    h, w, n = 5, 7, 6
    f = jnp.asarray(rng.normal(size=(h, w, n)))
    a = jnp.asarray(rng.normal(size=(h * w, n)))
    a = a.T @ a
    grad = jax.grad(losses.gram_loss)(f, a)
    fm = np.asarray(f).reshape(-1, n).T            # N × M
    g = fm @ fm.T
    closed = (g - np.asarray(a)) @ fm / (n ** 2 * (h * w) ** 2)
    np.testing.assert_allclose(np.asarray(grad).reshape(-1, n).T, closed, rtol=1e-12)


def test_content_gradient_is_f_minus_p(x64):
    rng = np.random.default_rng(1)
    f, p = (jnp.asarray(rng.normal(size=(4, 3, 8))) for _ in range(2))
    np.testing.assert_allclose(jax.grad(losses.content_loss)(f, p), f - p, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(lambda f: losses.content_loss(f, p, kind="mse"))(f),
                               2 * (f - p) / f.size, rtol=1e-12)


def test_gram_normaliser_does_not_overflow_at_512():
    # 4 N² M² for N = 64, M = 512² is ~1.2e15: it must be computed in floating point.
    f = jnp.ones((512, 512, 64), jnp.float32)
    a = jnp.zeros((64, 64), jnp.float32)
    e = losses.gram_loss(f, a)
    # G = M everywhere, so E = N² M² / (4 N² M²) = 1/4 exactly.
    np.testing.assert_allclose(float(e), 0.25, rtol=1e-5)


def test_tv_loss_closed_form():
    img = jnp.asarray(np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3))
    # rows differ by 9 (3 cols × 3 channels), columns by 3: 9²·(1·3·3) + 3²·(2·2·3)
    assert float(losses.tv_loss(img)) == pytest.approx(81 * 9 + 9 * 12)
    # "mean": the same sum over the 2·3·3 values, in 8-bit levels (×255²)
    assert float(losses.tv_loss(img, kind="mean")) == pytest.approx(
        (81 * 9 + 9 * 12) / 18 * 255 ** 2, rel=1e-6)


def test_mean_tv_is_the_same_at_every_size():
    """Stripes of period 2 at 16 and 32 px: the summed TV grows with the area (×4.1), the
    mean form stays at (W − 1)/W of 255² (closed forms)."""
    x = np.zeros((16, 16, 3), np.float32)
    x[:, ::2] = 1.0                                          # vertical stripes, period 2
    big = np.tile(x, (2, 2, 1))
    small_sum, big_sum = (float(losses.tv_loss(jnp.asarray(a))) for a in (x, big))
    small_mean, big_mean = (float(losses.tv_loss(jnp.asarray(a), kind="mean")) for a in (x, big))
    # closed form: every horizontal neighbour differs by 1 in 3 channels: 3·H·(W−1)
    assert small_sum == 3 * 16 * 15 and big_sum == 3 * 32 * 31
    np.testing.assert_allclose([small_mean, big_mean], np.array([15 / 16, 31 / 32]) * 255 ** 2,
                               rtol=1e-6)


KEY = jax.random.PRNGKey(0)


def _tiny_problem(size=32):
    content = jnp.asarray(make_image(size, size, seed=1))
    style = jnp.asarray(make_image(size, size, seed=2))
    return content, style


@pytest.mark.parametrize("method", list(optimize.OPTIMIZERS))
def test_every_optimizer_lowers_objective_stays_in_box_and_is_seeded(tiny_vgg, method):
    content, style = _tiny_problem()
    solver = Solver(optimizer=method, max_iter=8, lr=0.01)
    objective = Objective()
    seen = []
    weights = nstjax.loss_weights(objective, tv_weight=0.0)   # the tiny network's terms
    run = lambda key: nstjax.stylize(  # noqa: E731
        tiny_vgg, content, style, key=key, solver=solver, init="uniform", weights=weights,
        callbacks=nstjax.Callbacks(snapshot=lambda i, x: seen.append(np.asarray(x)),
                                   snapshot_every=1))
    res = run(jax.random.PRNGKey(3))
    hist = np.asarray(res.history)[: int(res.n_iter)]
    targets = nstjax.compute_targets(tiny_vgg, content, [style], objective=objective)
    k_init, k_loss = jax.random.split(jax.random.PRNGKey(3))
    x0 = jax.random.uniform(k_init, content.shape)
    f0 = float(nstjax.total_loss(x0, tiny_vgg, targets, weights, k_loss, objective=objective))
    assert int(res.n_iter) == 8 and np.all(np.isfinite(hist))
    # From noise every optimiser cuts the tiny objective by far more than 10% in 8 steps
    # (measured 40-99%); 10% leaves room for platform differences yet fails a no-op.
    assert float(res.loss) < 0.9 * f0
    assert float(res.image.min()) >= 0.0 and float(res.image.max()) <= 1.0
    if optimize.make_optimizer(method).bounded:  # every iterate, not just the last, in the box
        assert len(seen) == 8
        for x in seen:
            assert x.min() >= 0.0 and x.max() <= 1.0
    again = run(jax.random.PRNGKey(3))  # same seed, same image (compile cache hit)
    np.testing.assert_array_equal(np.asarray(res.image), np.asarray(again.image))
    other = run(jax.random.PRNGKey(4))
    assert not np.array_equal(np.asarray(res.image), np.asarray(other.image))


def test_weights_solver_settings_and_callbacks_do_not_recompile(tiny_vgg):
    from nstjax.run.transfer import advance_jit, finish_jit, init_jit
    programs = (init_jit, advance_jit, finish_jit)
    content, style = _tiny_problem()
    quiet = nstjax.Callbacks(progress=lambda i, v: None)
    nstjax.stylize(tiny_vgg, content, style, key=KEY, solver=Solver(max_iter=2),
                   callbacks=quiet)
    before = [p._cache_size() for p in programs]
    weights = nstjax.loss_weights(Objective(), style_weight=123.0, tv_weight=0.5, content_weight=0.5)
    seen = []
    res = nstjax.stylize(tiny_vgg, content * 0.9, style, key=jax.random.PRNGKey(5), weights=weights,
                   solver=Solver(max_iter=2, lr=0.3, rtol=0.1, tol_x=0.01, threshold=1.0),
                   callbacks=nstjax.Callbacks(progress=lambda i, v: seen.append(i)))
    assert [p._cache_size() for p in programs] == before
    # the new run's own callback saw each of its iterations (the first run's saw none)
    assert seen == list(range(1, int(res.n_iter) + 1))


def test_should_stop_ends_the_solve_with_status_interrupted(tiny_vgg):
    content, style = _tiny_problem()
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) >= 3

    seen = []
    res = nstjax.stylize(tiny_vgg, content, style, key=KEY, solver=Solver(max_iter=500),
                         callbacks=nstjax.Callbacks(should_stop=stop_after_three,
                                                    progress=lambda i, v: seen.append(i)))
    # consulted after each chunk (at least one iteration each): stopped after the third
    assert len(calls) == 3 and 3 <= int(res.n_iter) < 500
    assert int(res.status) == nstjax.Status.INTERRUPTED
    assert seen == list(range(1, int(res.n_iter) + 1))      # every iteration reported once
    assert np.all(np.isfinite(np.asarray(res.image)))


def test_objective_terms_add_up_and_style_blend(tiny_vgg):
    content, style = _tiny_problem()
    objective = Objective()
    style2 = jnp.asarray(make_image(24, 40, seed=9))
    t2 = nstjax.compute_targets(tiny_vgg, content, [style, style2], objective=objective)
    x = jnp.asarray(make_image(32, 32, seed=4))
    # blend 1:3 is normalised to 0.25/0.75
    w2 = nstjax.loss_weights(objective, n_styles=2, tv_weight=0.1, style_blend=(1.0, 3.0))
    parts = nstjax.objective_terms(x, tiny_vgg, t2, w2, KEY, objective=objective)
    # float32 sum of three terms: a few ulps (1e-6 relative).
    assert float(parts["total"]) == pytest.approx(
        float(parts["content"] + parts["style"] + parts["tv"]), rel=1e-6)
    # the blend is linear in the per-style losses (float32, separately compiled: 1e-5)
    single = [nstjax.objective_terms(
        x, tiny_vgg, nstjax.compute_targets(tiny_vgg, content, [s], objective=objective),
        nstjax.loss_weights(objective, tv_weight=0.1), KEY, objective=objective)["style"]
        for s in (style, style2)]
    assert float(parts["style"]) == pytest.approx(
        0.25 * float(single[0]) + 0.75 * float(single[1]), rel=1e-5)


@pytest.mark.real_weights
def test_real_weights_all_optimizers_lower_objective(real_vgg):
    shared = Path(__file__).resolve().parents[3] / "shared" / "images"
    if (shared / "tubingen.jpg").exists():  # a real photo and painting where available
        content = jnp.asarray(nstjax.load_image(shared / "tubingen.jpg", size=64))
        style = jnp.asarray(nstjax.load_image(shared / "starry_night.jpg", size=64))
    else:
        content = jnp.asarray(make_image(48, 64, seed=1))
        style = jnp.asarray(make_image(64, 64, seed=7))
    objective = Objective()
    targets = nstjax.compute_targets(real_vgg, content, [style], objective=objective)
    k_loss = jax.random.split(KEY)[1]
    f0 = float(nstjax.total_loss(content, real_vgg, targets, nstjax.loss_weights(Objective()), k_loss,
                                 objective=objective))
    for method in optimize.OPTIMIZERS:
        res = nstjax.stylize(real_vgg, content, style, key=KEY,
                             solver=Solver(optimizer=method, max_iter=6, lr=0.05))
        # 6 steps from the content image must lower the objective; 5% fails a no-op run.
        # Plain gradient descent at a stable step size moves slowly on this ill-conditioned
        # objective (measured 4% in 6 steps): 1% for it.
        assert float(res.loss) < (0.99 if method == "gd" else 0.95) * f0, method
        assert float(res.image.min()) >= 0 and float(res.image.max()) <= 1


def test_readme_snippets_run(tiny_vgg, monkeypatch, tmp_path):
    """Every Python snippet of the README's "Python" section and of docs/python.md runs as
    written, on the tiny network, small generated images instead of the user's files, and
    few iterations."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    section = readme.split("\n## Python", 1)[1].split("\n## ", 1)[0]
    ours = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert ours, "README's Python section lost its snippet"
    page = re.findall(r"```python\n(.*?)```", (root / "docs" / "python.md").read_text(),
                      flags=re.S)
    blocks = list(dict.fromkeys(ours + page))
    assert len(page) >= 3, "docs/python.md lost its snippets"
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    monkeypatch.setattr(nstjax, "load_image", lambda path, size=None, **k: make_image(
        24, 32, seed=len(str(path))))
    monkeypatch.setattr(nstjax, "stylize", functools.partial(
        nstjax.stylize, solver=nstjax.Solver(max_iter=3)))   # a snippet's own solver wins
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        code = re.sub(r"max_iter=\d+", "max_iter=3", code)
        code = code.replace("size=256", "size=32").replace("RunSpec(size=384)", "RunSpec(size=32)")
        exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out.png").exists() and (tmp_path / "member_8.png").exists()


def test_auto_scales_equalise_gradient_norms(tiny_vgg):
    # li2017 §4: λ_m makes the style gradient of method m as large as the content gradient.
    content, style = _tiny_problem()
    objective = Objective(style_losses=("gram", "bn"))
    targets = nstjax.compute_targets(tiny_vgg, content, [style], objective=objective)
    lw = nstjax.loss_weights(objective)
    scales = nstjax.auto_scales(content, tiny_vgg, targets, lw, KEY, objective=objective)
    probe = jnp.clip(content + 0.05 * jax.random.normal(jax.random.fold_in(KEY, 7),
                                                        content.shape), 0.0, 1.0)
    only = lambda **kw: lw._replace(**kw)  # noqa: E731
    g_content = jax.grad(lambda x: nstjax.total_loss(
        x, tiny_vgg, targets, only(style_weight=jnp.float32(0.0)), KEY,
        objective=objective))(probe)
    for m in range(2):
        mix = jnp.zeros(2).at[m].set(1.0)
        g_style = jax.grad(lambda x: nstjax.total_loss(
            x, tiny_vgg, targets, only(content_weight=jnp.float32(0.0),
                                       style_weight=jnp.float32(1.0), style_mix=mix,
                                       style_scales=scales), KEY,
            objective=objective))(probe)
        # float32 norms of ~3k-element gradients: 1e-4 relative.
        np.testing.assert_allclose(float(jnp.linalg.norm(g_style)),
                                   float(jnp.linalg.norm(g_content)), rtol=1e-4)
