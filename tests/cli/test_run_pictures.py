"""Pictures of a run: the loss-curve PNG, the animation, and the stylize flags behind them.

Counts are exact (frames, image sizes); "not blank" means the plot has pixels of each
series' colour (exact RGB, Pillow draws them unblended) and is not one colour.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from nstjax.cli import run
from nstjax.io import pictures

RED, BLUE, BLACK = (pictures.CURVE_COLOURS[k] for k in ("style", "content", "total"))


def _has(rgb01, colour) -> int:
    u8 = np.rint(np.asarray(rgb01) * 255).astype(np.uint8)
    return int(np.all(u8 == np.asarray(colour, np.uint8), axis=-1).sum())


def test_loss_curve_size_and_series():
    it = np.arange(1, 101)
    img = pictures.loss_curve({"total": (it, 1e6 * np.exp(-it / 20) + 10.0),
                               "content": ([10, 50, 100], [5.0, 20.0, 30.0]),
                               "style": ([10, 50, 100], [1e5, 1e3, 50.0])},
                              width=320, height=200)
    assert img.shape == (200, 320, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert _has(img, RED) > 10 and _has(img, BLUE) > 10 and _has(img, BLACK) > 100


def test_loss_curve_skips_what_a_log_axis_cannot_show():
    """Zeros, negatives and NaN are left out; nothing positive at all is an error."""
    img = pictures.loss_curve({"total": ([1, 2, 3], [10.0, np.nan, 1.0]),
                               "tv": ([1, 2], [0.0, -1.0])})
    assert img.shape == (300, 480, 3)
    with pytest.raises(ValueError, match="no positive finite"):
        pictures.loss_curve({"tv": ([1, 2], [0.0, 0.0])})


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animation_frame_count(tmp_path, suffix):
    frames = [make_image(24, 32, seed=k) for k in range(7)]
    path = pictures.save_animation(tmp_path / f"run{suffix}", frames, frame_ms=50)
    with Image.open(path) as im:
        assert im.n_frames == 7 and im.size == (32, 24)
        assert im.info.get("loop") == 0
    assert not list(tmp_path.glob(".*"))           # no temporary file left


def test_animation_refusals(tmp_path):
    with pytest.raises(ValueError, match="is .gif or .webp"):
        pictures.save_animation(tmp_path / "run.mp4", [make_image(8, 8)])
    with pytest.raises(ValueError, match="no frames"):
        pictures.save_animation(tmp_path / "run.gif", [])
    with pytest.raises(ValueError, match="different sizes"):
        pictures.save_animation(tmp_path / "run.gif", [make_image(8, 8), make_image(8, 9)])


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def inputs(tmp_path):
    c, s1, s2 = tmp_path / "content.png", tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray((make_image(40, 48, seed=1) * 255).astype(np.uint8)).save(c)
    Image.fromarray((make_image(32, 32, seed=2) * 255).astype(np.uint8)).save(s1)
    Image.fromarray((make_image(32, 32, seed=3) * 255).astype(np.uint8)).save(s2)
    left = np.zeros((20, 24), np.uint8)
    left[:, :12] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    return c, s1, s2


@pytest.fixture
def tiny_cli(tiny_vgg, monkeypatch):
    import nstjax
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)


def test_stylize_masks_animation_and_loss_curve(inputs, tmp_path, tiny_cli, capsys):
    """Two masked styles, 5 iterations, --save-every 2: frames 2 and 4 and the final
    image (5) make 3 animation frames; the loss curve is 480 × 300 and not blank; the
    sidecar records the masks, the frames and the terms at the frames."""
    c, s1, s2 = inputs
    out = tmp_path / "out" / "result.png"
    code = run(["stylize", "--content", str(c), "--style", str(s1), str(s2),
                "--style-mask", str(tmp_path / "left.png"), str(tmp_path / "right.png"),
                "--mask-mode", "inside", "--size", "32", "--iters", "5", "--init", "content",
                "--save-every", "2",
                "--animation", str(tmp_path / "out" / "run.webp"), "--no-progress",
                # Gatys' sum: at 32 px it moves the image enough in 5 iterations that no two
                # 8-bit frames are equal (an animated WebP merges equal frames)
                "--content-loss", "sum", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    with Image.open(tmp_path / "out" / "run.webp") as im:
        assert im.n_frames == 3 and im.size == (32, 27)
    curve = np.asarray(Image.open(tmp_path / "out" / "result_loss.png").convert("RGB"))
    assert curve.shape == (300, 480, 3)
    assert _has(curve / 255.0, RED) > 0 and _has(curve / 255.0, BLUE) > 0
    assert len(np.unique(curve.reshape(-1, 3), axis=0)) > 3
    meta = json.loads((tmp_path / "out" / "result.png.json").read_text())
    assert meta["animation"]["frames"] == 3 and meta["frame_period"] == 2
    assert meta["masks"]["mode"] == "inside" and len(meta["masks"]["style"]) == 2
    assert meta["loss_terms"]["style"]["iterations"] == [1, 2, 3, 4, 5]   # every iteration
    assert (tmp_path / "out" / "result_00002.png").exists()      # --save-every still writes


def test_default_frame_period(inputs, tmp_path, tiny_cli, capsys):
    """Without --save-every: one frame per iteration up to 40 frames (5 iterations: 5
    frames, the last being the final image), and no snapshot files.  (The same objective,
    solver and sizes as the test above: its compiled programs are reused.)"""
    c, s1, s2 = inputs
    out = tmp_path / "r.png"
    code = run(["stylize", "--content", str(c), "--style", str(s1), str(s2),
                "--style-mask", str(tmp_path / "left.png"), str(tmp_path / "right.png"),
                "--size", "32", "--iters", "5", "--animation", str(tmp_path / "r.gif"),
                "--content-loss", "sum", "--no-progress", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    with Image.open(tmp_path / "r.gif") as im:
        assert im.n_frames == 5
    assert (tmp_path / "r_loss.png").exists()
    assert not list(tmp_path.glob("r_0*.png"))


@pytest.mark.parametrize("extra, message", [
    (["--style-mask", "{left}", "{right}"], "2 mask(s) for 1 style"),
    (["--style-mask", "{missing}"], "no such mask file"),
    (["--animation", "{tmp}/run.mp4"], ".webp or .gif"),
    (["--mask-mode", "inside"], "needs --style-mask"),
    (["--style-mask", "{wide}"], "aspect ratio"),
    (["--style-mask", "{black}"], "style mask 1"),
])
def test_bad_flags_one_line_exit_2(inputs, tmp_path, tiny_cli, capsys, extra, message):
    c, s1, _ = inputs
    Image.new("L", (80, 20)).save(tmp_path / "wide.png")
    Image.new("L", (24, 20)).save(tmp_path / "black.png")
    fmt = dict(left=tmp_path / "left.png", right=tmp_path / "right.png", tmp=tmp_path,
               missing=tmp_path / "missing.png", wide=tmp_path / "wide.png",
               black=tmp_path / "black.png")
    code = run(["stylize", "--content", str(c), "--style", str(s1), "--size", "32",
                "--iters", "2", "--no-progress", "--output", str(tmp_path / "o.png"),
                *[a.format(**fmt) for a in extra]])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o.png").exists()


def test_sweep_cells_carry_loss_curves():
    """Each member's cell: its image top-left, a loss curve below it (160 px wide for a
    32 px image: 88 px high), the same size for every member; a member with no finite
    loss gets a note instead of failing the sheet."""
    from types import SimpleNamespace

    from nstjax.cli.sweep import member_cells
    k, n = 3, 10
    history = np.stack([np.linspace(100.0, 10.0, n) * (j + 1) for j in range(k)])
    history[2] = np.nan
    res = SimpleNamespace(images=np.stack([make_image(24, 32, seed=j) for j in range(k)]),
                          n_iter=np.array([n, n, n]), history=history,
                          terms={"content": np.array([1.0, 2.0, np.nan]),
                                 "style": np.array([5.0, 6.0, np.nan])})
    cells = member_cells(res)
    assert cells.shape == (3, 24 + 88, 160, 3)
    np.testing.assert_array_equal(cells[:, :24, :32], res.images)
    for j in range(2):
        assert _has(cells[j, 24:], BLACK) > 50 and _has(cells[j, 24:], RED) > 0
    assert _has(cells[2, 24:], RED) == 0 and cells[2, 24:].min() < 0.5    # the note


def test_loss_curve_costs_no_evaluation_after_the_solve(inputs, tmp_path, tiny_cli, capsys,
                                                         monkeypatch):
    """A 25-iteration run's loss curve: every term at every iteration, from the solve's own
    evaluations.  Nothing reaches the network once the solve has returned, and without
    --animation or --save-every no snapshot forces a chunk to end (the driver's only
    boundaries are its own timing ones)."""
    import nstjax
    from nstjax.objective import terms as terms_module
    state = {"solved": False, "late_calls": 0, "every": None}
    from nstjax.run import resolve as resolve_module
    real_stylize, real_features = nstjax.stylize, terms_module.extract_features

    def stylize(*args, **kw):
        state["every"] = kw["callbacks"].every
        result = real_stylize(*args, **kw)
        state["solved"] = True
        return result

    def features(*args, **kw):
        state["late_calls"] += state["solved"]
        return real_features(*args, **kw)

    monkeypatch.setattr(resolve_module, "stylize", stylize)    # what stylize_run calls
    monkeypatch.setattr(terms_module, "extract_features", features)
    c, s1, _ = inputs
    out = tmp_path / "r.png"
    code = run(["stylize", "--content", str(c), "--style", str(s1), "--size", "32",
                "--iters", "25", "--no-progress", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert state["solved"] and state["late_calls"] == 0 and state["every"] == 0
    meta = json.loads((tmp_path / "r.png.json").read_text())
    n = meta["iterations"]
    for term in ("content", "style", "tv"):
        assert meta["loss_terms"][term]["iterations"] == list(range(1, n + 1))
    total = np.asarray(meta["loss_history"])
    parts = sum(np.asarray(meta["loss_terms"][t]["values"]) for t in ("content", "style", "tv"))
    np.testing.assert_allclose(parts, total, rtol=1e-5)   # the same evaluation, float32 sums
