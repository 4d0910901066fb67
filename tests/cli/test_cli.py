"""The stylize command: end to end on a small image, and every bad-input path (issue 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from nstjax.cli import run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def images(tmp_path):
    c, s = tmp_path / "content.png", tmp_path / "style.jpg"
    Image.fromarray((make_image(40, 48, seed=1) * 255).astype(np.uint8)).save(c)
    Image.fromarray((make_image(32, 32, seed=2) * 255).astype(np.uint8)).save(s)
    return c, s


def _run(argv, capsys):
    code = run(["stylize", *map(str, argv)])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.real_weights
def test_cli_end_to_end(images, tmp_path, real_vgg, capsys):
    c, s = images
    out = tmp_path / "out" / "result.png"           # the folder is created
    before = c.read_bytes()
    code, err = _run(["--content", c, "--style", s, "--output", out, "--size", 32,
                      "--iters", 3, "--save-every", 2, "--no-progress", "--seed", 1], capsys)
    assert code == 0, err
    img = np.asarray(Image.open(out))
    assert img.shape == (27, 32, 3)                 # long edge 32, aspect of 48×40 kept
    meta = json.loads((tmp_path / "out" / "result.png.json").read_text())
    assert meta["iterations"] == 3 and len(meta["loss_history"]) == 3
    assert meta["arguments"]["size"] == 32 and meta["solver"]["max_iter"] == 3
    assert meta["status"] == "max_iter" and meta["command"] == "stylize"
    assert meta["loss_history"][-1] < meta["loss_history"][0]
    assert (tmp_path / "out" / "result_00002.png").exists()
    assert c.read_bytes() == before                 # inputs untouched
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


BAD = [
    (["--content", "{tmp}/missing.png", "--style", "{s}"], "no such file"),
    (["--content", "{notimg}", "--style", "{s}"], "not a readable image"),
    (["--content", "{c}", "--style", "{s}", "--style-layers", "relu9_1"], "unknown VGG19 layer"),
    (["--content", "{c}", "--style", "{s}", "--style-weight", "-1"], "style-weight"),
    (["--content", "{c}", "--style", "{s}", "--content-weight", "nan"], "content-weight"),
    (["--content", "{c}", "--style", "{s}", "--optimizer", "sgd"], "unknown optimizer"),
    (["--content", "{c}", "--style", "{s}", "--size", "8"], "16-pixel"),
    (["--content", "{c}", "--style", "{s}", "--size", "60000"], "GiB"),
    (["--content", "{c}", "--style", "{s}", "--output", "{c}"], "overwrite an input"),
    (["--content", "{c}", "--style", "{s}", "--style-loss", "nope"], "unknown style loss"),
    (["--content", "{c}", "--style", "{s}", "--output", "{tmp}/x.unknownext"], "extension"),
    (["--content", "{c}", "--style", "{s}", "--style-blend", "1,2"], "style-blend"),
    (["--content", "{c}", "--style", "{s}", "--style-blend", "0"], "sum to 0"),
    (["--content", "{c}", "--style", "{s}", "--style-weight", "1e40"], "overflow"),
    (["--content", "{c}", "--style", "{s}", "--threshold", "nan"], "threshold"),
    (["--content", "{c}", "--style", "{s}", "--size", "abc"], "invalid int value"),
    (["--content", "{c}", "--style", "{s}", "--iters", "1000000000000"], "32-bit counter"),
    (["--content", "{c}", "--style", "{s}", "--history", "2147483648"], "32-bit counter"),
    (["--content", "{c}", "--style", "{s}", "--save-every", "99999999999"], "32-bit counter"),
    (["--content", "{c}", "--style", "{s}", "--output", "{tmp}/folder.png"], "is a folder"),
    (["--content", "{c}", "--style", "{s}", "--output", "/proc/x.png"], "cannot write"),
    (["--content", "{tiny}", "--style", "{s}"], "16-pixel minimum"),
    (["--content", "{c}", "--style", "{s}", "--init", "{wide}"], "aspect ratio"),
    (["--content", "{c}", "--style", "{s}", "--config", "{tmp}/none.json"], "no such file"),
    (["--content", "{c}", "--style", "{s}", "--config", "{notimg}"], "JSON"),
    (["--content", "{c}", "--style", "{s}", "--init", "{tmp}/nope.png"], "no such file"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_one_line_exit_2(images, tmp_path, capsys, argv, message):
    c, s = images
    notimg = tmp_path / "notes.png"
    notimg.write_text("this is not an image")
    tiny, wide = tmp_path / "tiny.png", tmp_path / "wide.png"
    Image.new("RGB", (1, 1)).save(tiny)
    Image.new("RGB", (90, 20)).save(wide)
    (tmp_path / "folder.png").mkdir()
    fmt = dict(c=c, s=s, tmp=tmp_path, notimg=notimg, tiny=tiny, wide=wide)
    argv = [a.format(**fmt) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "o.png")]
    before = c.read_bytes()
    code, err = _run(argv + ["--no-progress"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert c.read_bytes() == before
    assert not (tmp_path / "o.png").exists()


def test_sidecar_repeats_the_run_with_config(images, tmp_path, tiny_vgg, monkeypatch, capsys):
    import nstjax
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    c, s = images
    first = tmp_path / "first.png"
    code, err = _run(["--content", c, "--style", s, "--output", first, "--size", 32,
                      "--iters", 3, "--style-weight", 7, "--no-progress", "--tv-weight", "0.5",
                      "--style-layers", "relu1_1", "relu2_1"], capsys)
    assert code == 0, err
    text = (tmp_path / "first.png.json").read_text()
    meta = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert meta["solver"]["threshold"] == "-inf"      # documented, not -Infinity
    again = tmp_path / "again.png"
    code, err = _run(["--config", tmp_path / "first.png.json", "--output", again,
                      "--iters", 2], capsys)
    assert code == 0, err
    meta2 = json.loads((tmp_path / "again.png.json").read_text())
    assert meta2["objective"] == meta["objective"]            # layers from the sidecar
    assert meta2["loss_weights"]["style_weight"] == 7.0 and meta2["solver"]["max_iter"] == 2
    assert meta2["arguments"]["content"] == str(c)


@pytest.mark.integration
def test_bad_input_in_a_subprocess_has_no_traceback(images, tmp_path):
    c, _ = images
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "stylize.py"), "--content",
                           str(c), "--style", str(tmp_path / "gone.jpg"), "--output",
                           str(tmp_path / "o.png")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_unwritable_output_folder_is_refused_before_work(images, tmp_path, capsys):
    c, s = images
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = _run(["--content", c, "--style", s, "--output", blocker / "o.png",
                      "--no-progress"], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a folder" in err


@pytest.mark.real_weights
def test_the_loss_curve_of_a_25_iteration_run_costs_no_extra_evaluation(
        images, tmp_path, real_vgg, capsys, monkeypatch):
    """Every evaluation of the objective is counted at run time (a host callback in the
    traced function): 25 Adam iterations are 27 evaluations (a forward pass for the loss's
    unit, the start's value and gradient, one per step), the same as the library's solve
    alone: the loss curve and its per-term series come from what the solve kept."""
    import jax

    from nstjax.run import transfer

    count = []
    real = transfer.problem_value

    def counted(x, problem, *, objective):
        jax.debug.callback(lambda: count.append(1))
        return real(x, problem, objective=objective)

    monkeypatch.setattr(transfer, "problem_value", counted)
    c, s = images
    out = tmp_path / "result.png"
    code, err = _run(["--content", c, "--style", s, "--output", out, "--size", 44,
                      "--iters", 25, "--optimizer", "adam", "--no-progress"], capsys)
    assert code == 0, err
    assert (tmp_path / "result_loss.png").exists()
    meta = json.loads((tmp_path / "result.png.json").read_text())
    assert meta["iterations"] == 25 and len(meta["loss_terms"]["style"]["values"]) == 25
    assert len(count) == 27
    count.clear()
    import nstjax
    from nstjax.io.image import load_image
    nstjax.stylize(real_vgg, load_image(c, size=44), load_image(s, size=44),
                   key=jax.random.PRNGKey(0),
                   solver=nstjax.Solver(optimizer="adam", max_iter=25))
    assert len(count) == 27


@pytest.mark.real_weights
def test_a_log_gets_plain_lines_and_the_last_line_lists_every_file(tmp_path, real_vgg, capsys):
    """stderr is not a terminal under pytest: one plain line per --log-every iterations
    (no carriage returns), the plan before them, grammatical counts, and the final line
    naming the image, its sidecar, the loss plot and the demo inputs."""
    out = tmp_path / "demo.png"
    code, err = _run(["--demo", "--output", out, "--size", 32, "--iters", 4,
                      "--log-every", 2], capsys)
    assert code == 0, err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("stylize: 32×24, plbfgs, 4 iterations")
    steps = [l for l in lines if l.startswith("stylize: ") and "/4 " in l]
    assert [l.split()[1] for l in steps] == ["2/4", "4/4"], err
    last = lines[-1]
    for name in ("demo.png", "demo.png.json", "demo_loss.png", "demo_content.png",
                 "demo_style.png"):
        assert str(tmp_path / name) in last and (tmp_path / name).exists(), (name, last)
    assert "4 iterations," in last
    code, err = _run(["--demo", "--output", tmp_path / "one.png", "--size", 32, "--iters", 1,
                      "--log-every", 0], capsys)
    assert code == 2 and "--log-every must be at least 1" in err


def test_status_names_in_results():
    import jax.numpy as jnp

    import nstjax
    from nstjax.solve.minimize import status_names
    assert status_names(jnp.int32(1)) == "CONVERGED"
    assert status_names(np.array([[0, 4], [3, 5]])) == [["MAX_ITER", "INTERRUPTED"],
                                                         ["NON_FINITE", "CONVERGED_X"]]
    res = nstjax.TransferResult(image=None, loss=0.0, history=None, n_iter=1,
                                status=jnp.int32(2), terms={}, weights=None)
    assert res.status_name == "THRESHOLD"
