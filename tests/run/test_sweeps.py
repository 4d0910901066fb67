"""Sweeps: K settings as one vmapped, compiled program, sharded over devices and hosts.

Member k of a sweep must equal the single :func:`nstjax.stylize` run with the same setting:
with Adam to float tolerance (losses within 5e-5 relative; images within 5e-5 absolute on
98% of the values and within 1e-3, a fiftieth of one step, on all: measured differences are
~2e-6, from the batched convolutions summing in another order, and Adam's normalised steps
can amplify one where a pixel's gradient is near zero, to 3.5e-4 in 26 of 2304 values of
the fusion sweep's first member on an AMD EPYC host); with L-BFGS the objective within 1%.

Every compile costs seconds on a small CPU, so the tests share a few static configurations
(two shallow VGG layers, 20 iterations, K = 4): each sweep below with the same config and K
reuses one compiled program, and the single runs reuse one compiled ``stylize``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import make_image
from PIL import Image

import nstjax
from nstjax.objective.config import Objective
from nstjax.run import memory
from nstjax.run import sweeps as sw
from nstjax.solve.solver import Solver

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 300

OBJ = Objective(content_layers=("relu1_2",), style_layers=("relu1_1", "relu1_2"),
                style_losses=("gram",), content_loss="sum")   # the balance the members fit
MIX = dataclasses.replace(OBJ, style_losses=("bn", "mmd-poly"))
ADAM = Solver(optimizer="adam", max_iter=20, lr=0.05)
LBFGS = Solver(max_iter=20)                            # the default optimiser
LBFGSB = Solver(optimizer="lbfgsb", max_iter=20)       # jaxopt's, for the stop-rule test
KEY = jax.random.PRNGKey(0)
CONTENT = make_image(24, 32, seed=1)
STYLE = make_image(24, 24, seed=2)
GRID = {"style_weight": [1.0, 1000.0], "tv_weight": [0.0, 0.5]}   # K = 4: (1, 0), (1, .5), ...
ATOL_IMAGE, RTOL_LOSS = 5e-5, 5e-5                     # Adam: member k vs its single run
ATOL_IMAGE_ALL, SHARE_WITHIN = 1e-3, 0.98              # ... and where Adam amplified it


def _single(vgg, objective, solver, setting):
    """The single run of one member's setting, configured the way a user would."""
    kw = {name: (tuple(v) if isinstance(v, (list, tuple)) else v)
          for name, v in setting.items() if not name.startswith("hyper.")}
    hyper = {name[len("hyper."):]: v for name, v in setting.items() if name.startswith("hyper.")}
    weights = nstjax.loss_weights(objective, hyper=hyper, **kw)
    return nstjax.stylize(vgg, CONTENT, STYLE, key=KEY, objective=objective, weights=weights,
                          solver=solver)


def _sweep(vgg, values, objective=OBJ, solver=ADAM, **kw):
    return sw.sweep(vgg, CONTENT, STYLE, values, key=KEY, objective=objective, solver=solver,
                    **kw)


def _assert_matches_singles(res, vgg, objective, solver, *, rtol_loss=RTOL_LOSS,
                            atol_image=ATOL_IMAGE):
    for k, setting in enumerate(res.settings):
        one = _single(vgg, objective, solver, setting)
        msg = f"member {k} {setting}"
        if atol_image is not None:
            diff = np.abs(res.images[k] - np.asarray(one.image))
            assert np.mean(diff <= atol_image) >= SHARE_WITHIN, (msg, np.mean(diff <= atol_image))
            np.testing.assert_allclose(res.images[k], np.asarray(one.image), rtol=0,
                                       atol=max(atol_image, ATOL_IMAGE_ALL), err_msg=msg)
        np.testing.assert_allclose(res.loss[k], float(one.loss), rtol=rtol_loss, err_msg=msg)
        for term in ("content", "style", "tv"):   # each part, relative to the total
            np.testing.assert_allclose(res.terms[term][k], float(one.terms[term]), rtol=0,
                                       atol=max(rtol_loss, 1e-4) * float(one.loss),
                                       err_msg=msg)
        assert res.n_iter[k] == int(one.n_iter) and res.status[k] == int(one.status), msg


@pytest.fixture(scope="module")
def adam_grid(tiny_vgg):
    """The 2×2 Adam grid over β and τ (shared by several tests)."""
    logs = []
    res = _sweep(tiny_vgg, GRID, log=logs.append)
    return res, logs


# ------------------------------------------------------------------------ the settings

def test_grid_and_zip_expansion():
    grid = sw.member_settings({"style_weight": [1, 10, 100], "tv_weight": [0, 1]})
    assert len(grid) == 6
    assert grid[:3] == [{"style_weight": 1, "tv_weight": 0}, {"style_weight": 1, "tv_weight": 1},
                        {"style_weight": 10, "tv_weight": 0}]
    zipped = sw.member_settings({"style_weight": [1, 10], "content_weight": [2, 3]}, mode="zip")
    assert zipped == [{"style_weight": 1, "content_weight": 2},
                      {"style_weight": 10, "content_weight": 3}]
    lw = sw.stack_loss_weights(nstjax.loss_weights(OBJ), grid)
    assert lw.style_weight.shape == (6,) and lw.style_layer_weights.shape == (6, 2)
    np.testing.assert_array_equal(lw.style_weight, [1, 1, 10, 10, 100, 100])
    np.testing.assert_array_equal(lw.tv_weight, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(lw.content_weight, np.ones(6))   # unswept: the base's


BAD = [
    ({"nope": [1.0]}, {}, "cannot sweep 'nope'"),
    ({"style_layer_weights": [[1.0, 1.0, 1.0]]}, {}, "2 weights, one per style layer"),
    ({"style_mix": [[0.5, 0.5]]}, {}, "1 weights, one per style-loss method"),
    ({"style_weight": [-1.0]}, {}, ">= 0"),
    ({"tv_weight": [float("nan")]}, {}, "finite"),
    ({"style_weight": [1e40]}, {}, "overflow"),
    ({"style_blend": [[0.0]]}, {}, "sum to 0"),
    ({"hyper.mmd-poly.c": [1.0]}, {}, "no such hyper-parameter"),   # not in a gram objective
    ({"style_weight": [1.0, 2.0], "tv_weight": [0.0]}, {"mode": "zip"}, "equal length"),
    ({"style_weight": [1.0]}, {"mode": "diagonal"}, "mode must be"),
    ({}, {}, "nothing to sweep"),
    ({"style_weight": []}, {}, "at least one value"),
]


@pytest.mark.parametrize("values,kw,message", BAD)
def test_bad_sweeps_raise_value_error(tiny_vgg, values, kw, message):
    with pytest.raises(ValueError, match=message):
        _sweep(tiny_vgg, values, **kw)


def test_bad_hyper_shape_raises(tiny_vgg):
    with pytest.raises(ValueError, match="must be a number"):
        _sweep(tiny_vgg, {"hyper.mmd-poly.c": [[1.0, 2.0]]}, objective=MIX)


# --------------------------------------------------------- member k equals its single run

def test_adam_grid_members_equal_single_runs(adam_grid, tiny_vgg):
    res, logs = adam_grid
    assert res.images.shape == (4, 24, 32, 3) and res.history.shape == (4, 20)
    assert [m for m in res.settings] == sw.member_settings(GRID)
    _assert_matches_singles(res, tiny_vgg, OBJ, ADAM)
    assert len({round(float(v), 3) for v in res.loss}) == 4       # the settings matter
    assert "fit in memory" in logs[0] and "chunks of 4" in logs[0]


def test_content_weight_and_style_layer_vectors_zipped(tiny_vgg):
    values = {"content_weight": [1.0, 0.1, 5.0, 1.0],
              "style_layer_weights": [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [3.0, 0.5]]}
    res = _sweep(tiny_vgg, values, mode="zip")
    _assert_matches_singles(res, tiny_vgg, OBJ, ADAM)


def test_fusion_mix_sweep(tiny_vgg):
    values = {"style_mix": [[0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [1.0, 0.0]]}
    res = _sweep(tiny_vgg, values, objective=MIX)
    _assert_matches_singles(res, tiny_vgg, MIX, ADAM)
    assert not np.allclose(res.images[0], res.images[2], atol=1e-3)


def test_hyper_parameter_sweep(tiny_vgg):
    res = _sweep(tiny_vgg, {"hyper.mmd-poly.c": [0.0, 0.5, 1.0, 4.0]}, objective=MIX)
    _assert_matches_singles(res, tiny_vgg, MIX, ADAM)
    np.testing.assert_array_equal(res.weights.hyper["mmd-poly"]["c"], [0, 0.5, 1, 4])


LBFGS_VALUES = {"style_weight": [1e-2, 1.0, 100.0, 1e4]}


def test_lbfgs_members_within_one_percent(tiny_vgg):
    res = _sweep(tiny_vgg, LBFGS_VALUES, solver=LBFGS)
    _assert_matches_singles(res, tiny_vgg, OBJ, LBFGS, rtol_loss=0.01, atol_image=None)


def test_converged_members_stop_and_count_their_own_iterations(tiny_vgg):
    # With jaxopt's L-BFGS-B, β = 1 barely changes the loss at first (relative change ~1e-7
    # < rtol) and stops at iteration 2; β = 100 and 1e4 change it by > 0.3% per step and run
    # all 20.  The loop runs until its last member stops; the early member must not move
    # after its stop.
    solver = dataclasses.replace(LBFGSB, rtol=1e-4)         # rtol is traced: no recompile
    res = _sweep(tiny_vgg, LBFGS_VALUES, solver=solver)
    assert res.n_iter[1] < 5 and list(res.n_iter[2:]) == [20, 20]
    assert res.status[1] == nstjax.Status.CONVERGED and res.status[3] == nstjax.Status.MAX_ITER
    assert np.isnan(res.history[1, res.n_iter[1]:]).all()
    assert np.isfinite(res.history[1, :res.n_iter[1]]).all()
    _assert_matches_singles(res, tiny_vgg, OBJ, solver, rtol_loss=0.01, atol_image=None)
    early = _single(tiny_vgg, OBJ, solver, res.settings[1])
    np.testing.assert_allclose(res.images[1], np.asarray(early.image), rtol=0,
                               atol=ATOL_IMAGE)
    kept_going = _single(tiny_vgg, OBJ, LBFGSB, res.settings[1])   # 18 more steps: 5e-4
    assert np.abs(res.images[1] - np.asarray(kept_going.image)).max() > 4 * ATOL_IMAGE


# ------------------------------------------------------------------------------- memory

def test_chunks_give_the_same_results(adam_grid, tiny_vgg):
    whole, _ = adam_grid
    logs = []
    res = _sweep(tiny_vgg, GRID, chunk=2, log=logs.append)
    assert "chunks of 2" in logs[0]
    np.testing.assert_allclose(res.images, whole.images, rtol=0, atol=ATOL_IMAGE)
    np.testing.assert_allclose(res.loss, whole.loss, rtol=RTOL_LOSS)
    np.testing.assert_array_equal(res.n_iter, whole.n_iter)
    # the plan comes from XLA's figures and the machine's free memory at the time (which
    # other processes move): more than the 4 members at this size, far fewer at 64× pixels
    fit = sw.members_that_fit(tiny_vgg, CONTENT, STYLE, OBJ, ADAM)
    assert int(re.search(r"(\d+) fit in memory", logs[0]).group(1)) >= 4 and fit >= 4
    big = np.zeros((192, 256, 3), np.float32)
    assert fit > 10 * sw.members_that_fit(tiny_vgg, big, STYLE, OBJ, ADAM)


def test_should_stop_ends_every_member_with_its_current_image(tiny_vgg):
    calls = []
    res = _sweep(tiny_vgg, GRID, solver=Solver(optimizer="adam", max_iter=500, lr=0.05),
                 callbacks=nstjax.Callbacks(should_stop=lambda: calls.append(1) or
                                            len(calls) >= 2))
    assert list(res.status) == [nstjax.Status.INTERRUPTED] * 4
    assert np.all(res.n_iter >= 2) and np.all(res.n_iter < 500)
    assert np.all(np.isfinite(res.images)) and len(res.settings) == 4


# ---------------------------------------------------------------- devices and hosts

_MULTI_DEVICE = """
import sys
import jax, numpy as np
sys.path[:0] = [{tests!r}, {tests_root!r}, {root!r}]
from nstjax.run import sweeps as sw
import nstjax
from test_sweeps import ADAM, CONTENT, GRID, KEY, OBJ, STYLE

assert jax.device_count() == 4, jax.devices()
outs = []
programs = sw._programs
def spy(objective, mesh):
    init, advance, finish = programs(objective, mesh)
    def call(*args):
        outs.append(finish(*args))
        return outs[-1]
    return init, advance, call
sw._programs = spy
logs = []
vgg = nstjax.init_random_weights(jax.random.PRNGKey(0))
res = sw.sweep(vgg, CONTENT, STYLE, GRID, key=KEY, objective=OBJ, solver=ADAM, log=logs.append)
x = outs[0][0].x
print(logs[0])
print("devices", len(x.sharding.device_set), sorted({{s.data.shape[0] for s in
      x.addressable_shards}}), type(x.sharding).__name__)
np.savez({out!r}, images=res.images, loss=res.loss, n_iter=res.n_iter)
"""


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}", **extra)
    return env


def _check_against(whole, path, members):
    got = np.load(path)
    np.testing.assert_allclose(got["images"], whole.images[members], rtol=0, atol=ATOL_IMAGE)
    np.testing.assert_allclose(got["loss"], whole.loss[members], rtol=RTOL_LOSS)
    np.testing.assert_array_equal(got["n_iter"], whole.n_iter[members])


@pytest.mark.integration
def test_k_axis_sharded_over_four_devices(adam_grid, tmp_path):
    whole, _ = adam_grid
    out = tmp_path / "four.npz"
    code = _MULTI_DEVICE.format(tests=str(TESTS), tests_root=str(TESTS.parent), root=str(ROOT),
                                out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT_S,
                          env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 4 device(s); running in chunks of 4" in proc.stdout, proc.stdout
    # the program's output spans all 4 devices, one member on each
    assert "devices 4 [1] NamedSharding" in proc.stdout, proc.stdout
    _check_against(whole, out, slice(None))


_MULTI_HOST = """
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address="127.0.0.1:{port}", num_processes=2,
                           process_id=int(sys.argv[1]))
import numpy as np
sys.path[:0] = [{tests!r}, {tests_root!r}, {root!r}]
import nstjax
from nstjax.run import sweeps as sw
from test_sweeps import ADAM, CONTENT, KEY, OBJ, STYLE

assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
vgg = nstjax.init_random_weights(jax.random.PRNGKey(0))
res = sw.sweep(vgg, CONTENT, STYLE, {values!r}, key=KEY, objective=OBJ, solver=ADAM, mode="zip",
               log=print)
np.savez(sys.argv[2], images=res.images, loss=res.loss, n_iter=res.n_iter)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_two_processes_with_jax_distributed(adam_grid, tmp_path):
    # Two "hosts" on localhost, two CPU devices each.  K = 3 does not divide evenly: process
    # 0 runs members 0-1 (sharded over its 2 devices), process 1 runs member 2 (padded);
    # process_allgather (gloo on the CPU) gives every process all 3, in order.
    whole, _ = adam_grid
    three = [whole.settings[k] for k in range(3)]
    values = {name: [m[name] for m in three] for name in three[0]}
    code = _MULTI_HOST.format(port=_free_port(), tests=str(TESTS), tests_root=str(TESTS.parent),
                              root=str(ROOT), values=values)
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i), str(tmp_path / f"p{i}.npz")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=TIMEOUT_S))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
    assert "3 members (2 on this process)" in outputs[0][0], outputs[0][0]
    assert "3 members (1 on this process)" in outputs[1][0], outputs[1][0]
    for i in range(2):
        _check_against(whole, tmp_path / f"p{i}.npz", slice(0, 3))


# ------------------------------------------------------------------- nstjax sweep

def _cli(argv):
    from nstjax.cli import run
    return run(["sweep", *map(str, argv)])


@pytest.fixture
def images(tmp_path):
    c, s = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray((CONTENT * 255 + 0.5).astype(np.uint8)).save(c)
    Image.fromarray((STYLE * 255 + 0.5).astype(np.uint8)).save(s)
    return c, s


# The flags of ADAM and GRID: the CLI's sweep reuses the program compiled above.
CLI_BASE = ["--size", "32", "--optimizer", "adam", "--iters", "20", "--lr", "0.05",
            "--content-layers", "relu1_2", "--style-layers", "relu1_1,relu1_2"]


def test_cli_writes_members_sheet_and_json(images, tmp_path, tiny_vgg, monkeypatch, capsys):
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    c, s = images
    before = c.read_bytes()
    out = tmp_path / "out"
    code = _cli(["--content", c, "--style", s, "--output-dir", out, "--no-progress",
                 *CLI_BASE, "--style-weight", "1", "1000", "--tv-weight", "0,0.5"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "4 members (grid over tv_weight, style_weight)" in err
    assert "fit in memory" in err and "chunks of 4" in err     # the plan, before the run
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["swept"] == ["tv_weight", "style_weight"] and len(meta["members"]) == 4
    first = meta["members"][2]                  # tv varies slowest, β (the columns) fastest
    assert first["setting"] == {"tv_weight": 0.5, "style_weight": 1.0}
    assert first["label"] == "tv=0.5, style=1"
    assert first["iterations"] == 20 and first["status"] == "max_iter"
    assert set(first["final_terms"]) == {"content", "style", "tv"}
    assert first["time_s"] > 0 and len(first["loss_history"]) == 20
    assert first["final_loss"] == pytest.approx(sum(first["final_terms"].values()), rel=1e-4)
    for k in range(4):
        img = np.asarray(Image.open(out / f"member_{k:02d}.png"))
        assert img.shape == (24, 32, 3)
    sheet = np.asarray(Image.open(out / "contact_sheet.png"))
    assert sheet.shape[0] > 2 * 24 and sheet.shape[1] > 2 * 32    # 2 × 2 plus labels
    assert c.read_bytes() == before
    assert not list(out.glob(".*"))                              # no temporary files


CLI_BAD = [
    (["--style-weight", "1,x"], "not a list of numbers"),
    (["--style-weight", "10"], "nothing to sweep"),
    (["--style-weight", "1,-1"], "style-weight"),
    (["--mode", "zip", "--style-weight", "1,2", "--tv-weight", "0,1,2"], "equal length"),
    (["--style-weight", "1,2", "--style-layer-weights", "1,1,1;1,0"], "one per style layer"),
    (["--style-weight", "1,2", "--mix", "0.5:0.5,1:0"], "one per style-loss method"),
    (["--style-weight", "1,1e40"], "overflow"),
    (["--style-weight", "1,2", "--size", "abc"], "invalid int value"),
    (["--hyper", "mmd-poly.c=0,1"], "no such hyper-parameter"),
    (["--style-weight", "1,2", "--style-loss", "nope"], "unknown style loss"),
    (["--style-weight", "1,2", "--chunk", "0"], "--chunk"),
    (["--style-weight", "1,2", "--size", "8"], "16-pixel"),
    (["--style-weight", "1,2", "--size", "60000"], "GiB"),
    (["--style-weight", "1,2", "--content", "{tmp}/missing.png"], "no such file"),
    (["--style-weight", "1,2", "--output-dir", "{c}"], "not a folder"),
    (["--style-weight", "1,2", "--content", "{inside}", "--output-dir", "{tmp}/in"],
     "overwrite an input"),
]


@pytest.mark.parametrize("argv,message", CLI_BAD)
def test_cli_bad_input_one_line_exit_2(images, tmp_path, capsys, argv, message):
    c, s = images
    (tmp_path / "in").mkdir()
    inside = tmp_path / "in" / "member_00.png"                   # an input where an output goes
    inside.write_bytes(c.read_bytes())
    argv = [a.format(c=c, tmp=tmp_path, inside=inside) for a in argv]
    if "--content" not in argv:
        argv += ["--content", str(c)]
    argv += ["--style", str(s)]
    if "--output-dir" not in argv:
        argv += ["--output-dir", str(tmp_path / "out")]
    code = _cli([*CLI_BASE, *argv])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "out").exists()
    assert inside.read_bytes() == c.read_bytes()


@pytest.mark.integration
def test_cli_bad_input_in_a_subprocess_has_no_traceback(images, tmp_path):
    c, _ = images
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep.py"), "--content",
                           str(c), "--style", str(tmp_path / "gone.jpg"), "--style-weight",
                           "1,10", "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_a_sweep_larger_than_the_memory_it_may_use_runs_in_chunks(adam_grid, tiny_vgg):
    whole, _ = adam_grid
    sw.plan_sweep(tiny_vgg, CONTENT, STYLE, OBJ, ADAM)    # compiled: the next plans agree
    plan = sw.plan_sweep(tiny_vgg, CONTENT, STYLE, OBJ, ADAM)
    assert plan.new_bytes(4) > plan.new_bytes(2) > plan.new_bytes(1) > 0
    two, three = plan.new_bytes(2), plan.new_bytes(3)
    available = int((two + three) / 2 / 0.8)              # two members, not three
    assert plan._replace(available=available).members_that_fit() == 2
    logs = []
    res = _sweep(tiny_vgg, GRID, chunk=4, log=logs.append, available=available)
    assert "chunks of 2 (--chunk 4 would not fit)" in logs[0], logs
    assert len(res.images) == 4 and res.settings == whole.settings   # every member
    np.testing.assert_allclose(res.images, whole.images, rtol=0, atol=ATOL_IMAGE)
    assert res.memory["available_bytes"] == available
    # planned = resident at plan time + new bytes, the new bytes within 80% of available,
    # and the resident part at most the process's peak since
    assert res.memory["planned_bytes"] <= memory.peak_rss_bytes() + 0.8 * available
    assert res.memory["peak_bytes"] > 0
    with pytest.raises(ValueError, match="not even one sweep member fits"):
        _sweep(tiny_vgg, GRID, available=int(plan.new_bytes(1) / 2))
