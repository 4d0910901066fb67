"""Optimisers as data and the minimize driver (issue 9); tiny problems only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.solve import lbfgs, optimize
from nstjax.solve import minimize as minimize_mod
from nstjax.solve.minimize import Status, minimize
from nstjax.solve.optimize import make_optimizer

BOUNDED = [name for name in optimize.OPTIMIZERS if make_optimizer(name).bounded]


def _box_qp(n=12, seed=0):
    """A convex quadratic whose box-constrained minimiser is known by construction.

    ``f(x) = ½(x − x*)ᵀA(x − x*) + bᵀ(x − x*)`` with ``A`` positive definite, ``x*`` in
    [0, 1] with some coordinates on each bound, and ``b`` zero on the free coordinates,
    positive on those at 0 and negative on those at 1. Then ``∇f(x*) = b`` satisfies the
    KKT conditions, so ``x*`` is the unique minimiser over the box.
    """
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, n))
    a = q @ q.T / n + 0.5 * np.eye(n)
    x_star = rng.uniform(0.2, 0.8, size=n)
    x_star[: n // 4] = 0.0
    x_star[n // 4: n // 2] = 1.0
    b = np.zeros(n)
    b[: n // 4] = rng.uniform(0.5, 2.0, size=n // 4)
    b[n // 4: n // 2] = -rng.uniform(0.5, 2.0, size=n // 2 - n // 4)
    a_, xs_, b_ = (jnp.asarray(v, jnp.float32) for v in (a, x_star, b))

    def fun(x):
        d = x - xs_
        return 0.5 * d @ a_ @ d + b_ @ d + 3.0
    return fun, x_star


def _in_box_every_step(x):
    return jnp.all((x >= 0.0) & (x <= 1.0))


@pytest.mark.parametrize("name", list(optimize.OPTIMIZERS))
def test_every_optimizer_lowers_objective_and_keeps_the_box(name):
    fun, _ = _box_qp()
    x0 = jnp.full(12, 0.5, jnp.float32)
    seen = []

    def on_step(i, value, x):
        jax.debug.callback(lambda ok: seen.append(bool(ok)), _in_box_every_step(x))
        return jnp.asarray(False)

    opt = make_optimizer(name, lr=0.05)
    res = jax.jit(lambda x: minimize(fun, x, opt, max_iter=30, on_step=on_step))(x0)
    assert float(res.value) < 0.9 * float(fun(x0))
    assert float(res.value) == pytest.approx(float(fun(res.x)), rel=1e-5)
    x = np.asarray(res.x)
    assert np.all((x >= 0) & (x <= 1))
    assert len(seen) == int(res.n_iter)
    if opt.bounded:  # bounded optimizers keep every iterate in the box, not only the last
        assert all(seen)


def test_plbfgs_matches_the_known_box_minimiser_and_lbfgsb():
    fun, x_star = _box_qp()
    x0 = jnp.full(12, 0.5, jnp.float32)
    run = jax.jit(lambda x, name: minimize(fun, x, make_optimizer(name), max_iter=200),
                  static_argnums=1)
    ours, ref = run(x0, "plbfgs"), run(x0, "lbfgsb")
    # float32 solves of a condition-number ~10 QP: 1e-4 absolute on x in [0, 1].
    np.testing.assert_allclose(np.asarray(ours.x), x_star, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ours.x), np.asarray(ref.x), atol=1e-4)
    assert float(ours.value) == pytest.approx(3.0, abs=1e-5)


def test_plbfgs_takes_one_evaluation_per_iteration_on_a_quadratic():
    # With an exact-curvature history the unit step is accepted: no line search.
    fun, _ = _box_qp(seed=1)
    with_aux = lambda x: (fun(x), ())  # noqa: E731   (the Optimizer protocol's form)
    opt = make_optimizer("plbfgs", history_size=5)
    x = jnp.full(12, 0.5, jnp.float32)
    state, _, _ = opt.init(with_aux, x)
    for _ in range(8):
        x, state, _, _ = opt.step(with_aux, x, state)
    # First step: scaled steepest descent, maybe halved a few times; then one each.
    assert int(state.n_evals) <= 1 + 8 + 4


def test_two_loop_with_one_pair_is_the_bfgs_update():
    # H = (I − ρ s yᵀ) γI (I − ρ y sᵀ) + ρ s sᵀ (Nocedal & Wright eq. 6.17 from H₀ = γI).
    rng = np.random.default_rng(0)
    n, m = 6, 3
    s, y, g = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    y = y + 2 * s  # sᵀy > 0
    rho, gamma = 1 / (s @ y), (s @ y) / (y @ y)
    v = np.eye(n) - rho * np.outer(y, s)
    h = v.T @ (gamma * np.eye(n)) @ v + rho * np.outer(s, s)
    sbuf = np.zeros((m, n), np.float32)
    ybuf = np.zeros((m, n), np.float32)
    rbuf = np.zeros(m, np.float32)
    sbuf[2], ybuf[2], rbuf[2] = s, y, rho
    out = lbfgs.two_loop(jnp.asarray(g, jnp.float32), *map(jnp.asarray, (sbuf, ybuf, rbuf)),
                         jnp.int32(0), jnp.float32(gamma))
    np.testing.assert_allclose(np.asarray(out), h @ g, rtol=1e-5, atol=1e-5)


def test_stopping_rules_on_a_quadratic():
    target = jnp.linspace(0.1, 0.9, 12)
    fun = lambda x: jnp.sum((x - target) ** 2) + 1.0  # noqa: E731  minimum value 1
    x0 = jnp.zeros(12)
    run = jax.jit(lambda x0, rtol, tol_x, thr: minimize(
        fun, x0, make_optimizer("adam", lr=0.01), max_iter=500, rtol=rtol, tol_x=tol_x,
        threshold=thr))
    full = run(x0, 0.0, 0.0, -jnp.inf)
    assert int(full.n_iter) == 500 and int(full.status) == Status.MAX_ITER
    rel = run(x0, 1e-3, 0.0, -jnp.inf)
    k = int(rel.n_iter)
    assert int(rel.status) == Status.CONVERGED and k < 500
    h = np.asarray(rel.history)
    assert abs(h[k - 1] - h[k - 2]) <= 1e-3 * abs(h[k - 2])
    assert np.all(np.isnan(h[k:]))
    thr = run(x0, 0.0, 0.0, 1.5)
    assert int(thr.status) == Status.THRESHOLD and float(thr.value) < 1.5
    assert float(np.asarray(thr.history)[int(thr.n_iter) - 2]) >= 1.5


def test_tol_x_stops_when_the_iterate_stops_moving():
    target = jnp.linspace(0.1, 0.9, 12)
    fun = lambda x: jnp.sum((x - target) ** 2)  # noqa: E731
    steps = []

    def on_step(i, value, x):
        jax.debug.callback(lambda x: steps.append(np.asarray(x)), x)
        return jnp.asarray(False)

    res = jax.jit(lambda x0: minimize(fun, x0, make_optimizer("gd", lr=0.05), max_iter=500,
                                      tol_x=1e-3, on_step=on_step))(jnp.full(12, 0.5))
    k = int(res.n_iter)
    assert int(res.status) == Status.CONVERGED_X and 1 < k < 500
    # gd with lr 0.05 contracts the distance to the target by 0.9 per step.
    last, before = steps[-1], steps[-2]
    assert np.linalg.norm(last - before) <= 1e-3 * np.linalg.norm(before)
    before2 = steps[-3]
    assert np.linalg.norm(before - before2) > 1e-3 * np.linalg.norm(before2)


def test_on_step_interrupts_at_the_asked_iteration():
    fun, _ = _box_qp()
    res = jax.jit(lambda x: minimize(fun, x, make_optimizer("plbfgs"), max_iter=50,
                                     on_step=lambda i, v, x: i >= 3))(jnp.full(12, 0.5))
    assert int(res.status) == Status.INTERRUPTED and int(res.n_iter) == 3
    assert np.isnan(np.asarray(res.history)[3:]).all()
    assert np.isfinite(np.asarray(res.history)[:3]).all()


@pytest.mark.parametrize("name", list(optimize.OPTIMIZERS))
def test_nan_loss_stops_and_keeps_last_finite(name):
    # Finite inside x < 0.5, NaN beyond: descent towards 1 must hit the NaN region.
    fun = lambda x: jnp.where(jnp.all(x < 0.5), jnp.sum((x - 1.0) ** 2), jnp.nan)  # noqa
    res = jax.jit(lambda x: minimize(fun, x, make_optimizer(name, lr=0.1), max_iter=200))(
        jnp.zeros(4))
    # First-order methods step blindly into the NaN region and must stop there; the
    # line-search methods may instead back off to the region's edge. Either way the result
    # is finite.
    if name in ("adam", "gd"):
        assert int(res.status) == Status.NON_FINITE
    assert np.all(np.isfinite(np.asarray(res.x))) and np.isfinite(float(res.value))
    assert float(res.value) == pytest.approx(float(fun(res.x)), rel=1e-6)


@pytest.mark.parametrize("name", ["plbfgs", "adam", "lbfgsb"])
def test_vmap_over_a_traced_parameter_equals_single_runs(name):
    fun0, _ = _box_qp()
    shifts = jnp.asarray([0.0, 0.3, -0.4], jnp.float32)

    def solve(shift, lr):
        fun = lambda x: fun0(x) + shift * jnp.sum(x)  # noqa: E731
        return minimize(fun, jnp.full(12, 0.5, jnp.float32), make_optimizer(name, lr=lr),
                        max_iter=15, rtol=1e-4)

    lrs = jnp.asarray([0.05, 0.02, 0.1], jnp.float32)
    batch = jax.jit(jax.vmap(solve))(shifts, lrs)
    for k in range(3):
        one = jax.jit(solve)(shifts[k], lrs[k])
        assert int(batch.n_iter[k]) == int(one.n_iter)
        assert int(batch.status[k]) == int(one.status)
        # Batched and single programs may reduce in a different order: float32 tolerance.
        np.testing.assert_allclose(np.asarray(batch.x[k]), np.asarray(one.x), atol=1e-5)
        np.testing.assert_allclose(np.asarray(batch.history[k]), np.asarray(one.history),
                                   rtol=1e-5)


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        optimize.register_optimizer("plbfgs")(optimize.plbfgs)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd")
    assert optimize.DEFAULT_OPTIMIZER in optimize.OPTIMIZERS
    assert {"plbfgs", "lbfgsb", "lbfgs", "optax-lbfgs", "adam", "gd"} <= set(optimize.OPTIMIZERS)


def test_a_solve_in_chunks_equals_one_solve():
    fun, _ = _box_qp()
    opt = make_optimizer("plbfgs")
    x0 = jnp.full(12, 0.5, jnp.float32)
    whole = jax.jit(lambda x: minimize(fun, x, opt, max_iter=20))(x0)
    start = jax.jit(lambda x: minimize_mod.minimize_init(fun, x, opt, max_iter=20))
    chunk = jax.jit(lambda s, until: minimize_mod.minimize_continue(fun, s, opt, until=until))
    state, seen = start(x0), []
    for until in (7, 14, 21):  # one program for every chunk: `until` is traced
        state = chunk(state, until)
        seen.append(int(state.n_iter))
    res = minimize_mod.minimize_result(fun, state, opt)
    assert seen == [7, 14, 20] and chunk._cache_size() == 1
    np.testing.assert_array_equal(np.asarray(res.x), np.asarray(whole.x))
    np.testing.assert_array_equal(np.asarray(res.history), np.asarray(whole.history))


_CACHE_PROBE = """
import jax, jax.numpy as jnp
from nstjax.solve import optimize
from nstjax.solve.minimize import minimize
from nstjax.run.compile_cache import enable_compilation_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
jnp.zeros(3).block_until_ready()  # a compilation before enabling must not matter
print("DIR", enable_compilation_cache())
fun = lambda x: jnp.sum((x - jnp.linspace(0.1, 0.9, 8)) ** 4)
res = jax.jit(lambda x: minimize(fun, x, optimize.make_optimizer("plbfgs"),
                                          max_iter=5))(jnp.zeros(8))
res.x.block_until_ready()
print("HITS", events.count("/jax/compilation_cache/cache_hits"))
print("MISSES", events.count("/jax/compilation_cache/cache_misses"))
"""


def _probe(env):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout
    return {k: v for k, v in (line.split(" ", 1) for line in out.splitlines())}


@pytest.mark.integration
def test_compilation_cache_is_used_by_a_second_process(tmp_path):
    import os
    env = {k: v for k, v in os.environ.items()     # not the suite's own cache (conftest)
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    env["NSTJAX_COMPILATION_CACHE"] = str(tmp_path / "jax-cache")
    # an entry without JAX's access-time file (a process stopped between its two writes)
    # made every later write fail under JAX's own size limit
    (tmp_path / "jax-cache").mkdir()
    (tmp_path / "jax-cache" / "orphan-cache").write_bytes(b"x")
    first = _probe(env)
    assert first["DIR"] == str(tmp_path / "jax-cache")
    assert int(first["MISSES"]) >= 1
    second = _probe(env)
    # Every program the second process compiles comes from the first one's cache.
    assert int(second["MISSES"]) == 0 and int(second["HITS"]) >= int(first["MISSES"])
    off = _probe({**env, "NSTJAX_COMPILATION_CACHE": "off"})
    assert off["DIR"] == "None" and int(off["HITS"]) == 0


def test_compilation_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    from nstjax.run.compile_cache import compilation_cache_dir
    monkeypatch.delenv("NSTJAX_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache_dir() == tmp_path / "nstjax" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache_dir() == tmp_path / "home" / ".cache" / "nstjax" / "jax"
    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "~/elsewhere")
    assert compilation_cache_dir() == tmp_path / "home" / "elsewhere"
    for off in ("0", "off", "OFF", "false", "no"):
        monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", off)
        assert compilation_cache_dir() is None


def test_a_miss_removes_only_an_entry_older_than_the_process(tmp_path, capsys):
    """A logged miss for a key whose entry predates the cache's set-up means the entry
    could not be read: it is removed, with one note.  An entry written since (by another
    process, after this one's lookup missed) is good and stays, without a note."""
    import logging
    import os

    from nstjax.run.compile_cache import enable_compilation_cache
    old, new = tmp_path / "old-cache", tmp_path / "new-cache"
    old.write_bytes(b"x")
    os.utime(old, (1e9, 1e9))
    try:
        enable_compilation_cache(tmp_path)
        new.write_bytes(b"x")
        log = logging.getLogger("jax._src.compiler")
        miss = "PERSISTENT COMPILATION CACHE MISS for '%s' with key %r"
        log.debug(miss, "jit_f", "new")
        assert new.exists() and "damaged" not in capsys.readouterr().err
        log.debug(miss, "jit_f", "old")
        assert not old.exists() and "damaged entry" in capsys.readouterr().err
    finally:                                # the suite's own cache again (conftest), or none
        if enable_compilation_cache() is None:
            from jax.experimental.compilation_cache import compilation_cache
            jax.config.update("jax_compilation_cache_dir", None)
            compilation_cache.reset_cache()


def test_cache_trim_removes_the_least_recently_used_down_to_three_quarters(tmp_path):
    """Ten 100-byte entries used at times 0..9 (the later of access and modification
    time), bound 900 bytes: the four oldest go (1000 -> 600 = 2/3 of the bound, the first
    total at or under 3/4), the newest six stay; JAX's access-time files all go; under the
    bound nothing is removed."""
    import os

    from nstjax.run.compile_cache import trim
    for i in range(10):
        entry = tmp_path / f"k{i}-cache"
        entry.write_bytes(b"x" * 100)
        atime, mtime = (1e9 + i, 1e9) if i % 2 else (1e9, 1e9 + i)   # either one counts
        os.utime(entry, (atime, mtime))
        (tmp_path / f"k{i}-atime").write_bytes(b"12345678")
    assert trim(tmp_path, max_bytes=900) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"k{i}-cache" for i in range(4, 10)]
    assert trim(tmp_path, max_bytes=600) == 0
    assert trim(tmp_path / "absent", max_bytes=1) == 0


@pytest.mark.parametrize("name", list(optimize.optimizer_names()))
def test_auxiliary_output_is_kept_at_every_iteration(name):
    """``has_aux``: the aux of each kept iterate, from the optimizer's own evaluations, is
    ``fun``'s aux there (here the value itself and its square root, so the history of the
    first aux leaf equals the loss history)."""
    fun, _ = _box_qp(seed=2)
    opt = make_optimizer(name, lr=0.05)

    def with_aux(x):
        v = fun(x)
        return v, {"v": v, "pair": jnp.stack([v, 2.0 * v])}

    res = minimize(with_aux, jnp.full(12, 0.5, jnp.float32), opt, max_iter=6, has_aux=True)
    n = int(res.n_iter)
    assert res.aux_history["pair"].shape == (6, 2)
    np.testing.assert_allclose(np.asarray(res.aux["v"]), float(res.value), rtol=1e-6)
    # each iteration's aux is the objective at the iterate it reports (same evaluation)
    np.testing.assert_allclose(np.asarray(res.aux_history["v"])[:n],
                               np.asarray(res.history)[:n], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.aux_history["pair"])[:n, 1],
                               2.0 * np.asarray(res.history)[:n], rtol=1e-5)
    assert np.all(np.isnan(np.asarray(res.aux_history["v"])[n:]))


def test_raw_loss_and_no_box_as_stylerep():
    """``normalize=False`` hands the optimiser ``f`` itself (unit 1); without the box Adam's
    iterate passes 1 on ``f = Σ(x − 2)²`` while the boxed one stops at 1."""
    from nstjax.solve.minimize import minimize_init
    fun = lambda x: jnp.sum((x - 2.0) ** 2)  # noqa: E731
    x0 = jnp.full((4,), 0.5)
    free = optimize.make_optimizer("adam", lower=-jnp.inf, upper=jnp.inf, lr=0.1)
    boxed = optimize.make_optimizer("adam", lr=0.1)
    assert float(minimize_init(fun, x0, free, max_iter=3, normalize=False).unit) == 1.0
    assert float(minimize_init(fun, x0, free, max_iter=3).unit) == 9.0      # |f(x₀)| = 4·1.5²
    assert float(minimize(fun, x0, free, max_iter=40).x.max()) > 1.5
    assert float(minimize(fun, x0, boxed, max_iter=40).x.max()) == 1.0
    from nstjax.solve.solver import Solver
    s = Solver("adam", 10, box=False, normalize=False)
    assert jax.tree_util.tree_structure(s) != jax.tree_util.tree_structure(Solver("adam", 10))


def test_branchless_result_equals_the_branch_and_batches_no_closed_over_array():
    """Under ``vmap`` a ``lax.cond`` on a batched predicate batches every operand, the arrays
    its branches close over included; ``branchless`` evaluates and selects instead.  Same
    result either way, and compiled for 8 members the branchless program holds at least 7
    fewer copies of a 4 MB matrix that the objective reads (one per member, less one)."""
    big = jnp.full((64, 16384), 1e-3, jnp.float32)                # 4 MB, shared

    def fun(x, w, m):
        return w * jnp.sum((x - 0.3) ** 2) + 1e-6 * jnp.sum((x @ m) ** 2)

    opt = make_optimizer("lbfgs")       # unbounded: the result is evaluated once more

    def result(w, m, branchless):
        f = lambda x: fun(x, w, m)  # noqa: E731
        state = minimize_mod.minimize_init(f, jnp.full(64, 0.9, jnp.float32), opt, max_iter=3)
        state = minimize_mod.minimize_continue(f, state, opt, until=3)
        return minimize_mod.minimize_result(f, state, opt, branchless=branchless)

    w = jnp.linspace(1.0, 2.0, 8)
    batched = {b: jax.jit(jax.vmap(lambda w, m, b=b: result(w, m, b), in_axes=(0, None)))
               for b in (False, True)}
    a, b = batched[False](w, big), batched[True](w, big)
    np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
    # the same evaluation, summed in another order by another fusion: float32's rounding
    np.testing.assert_allclose(np.asarray(a.value), np.asarray(b.value), rtol=1e-5)
    temp = {k: f.lower(w, big).compile().memory_analysis().temp_size_in_bytes
            for k, f in batched.items()}
    assert temp[False] - temp[True] >= 7 * big.nbytes, temp


def test_optimizers_declare_whether_they_search_a_line():
    """The L-BFGS family compares nearby evaluations (a deterministic objective); the
    first-order methods do not; an unknown name lists the registered ones."""
    searching = {n for n in optimize.optimizer_names() if optimize.uses_line_search(n)}
    assert searching == {"plbfgs", "lbfgsb", "lbfgs", "optax-lbfgs"}
    assert set(optimize.optimizer_names()) - searching == {"adam", "rmsprop", "gd"}
    with pytest.raises(ValueError, match="unknown optimizer 'nope'.*plbfgs"):
        optimize.uses_line_search("nope")

