"""Coarse-to-fine: the size ladder, iterations per rung, and warm starts (tiny VGG)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.run import multiscale
from nstjax.run.hooks import Callbacks
from tests.conftest import make_image


@pytest.mark.parametrize("min_size,size,expected", [
    (64, 512, (64, 91, 128, 181, 256, 362, 512)),
    (128, 512, (128, 181, 256, 362, 512)),
    (100, 300, None),
    (256, 256, (256,)),
    (200, 256, (200, 256)),
])
def test_size_ladder(min_size, size, expected):
    ladder = multiscale.size_ladder(min_size, size)
    assert ladder[0] == min_size and ladder[-1] == size
    ratios = np.array(ladder[1:]) / np.array(ladder[:-1])
    # Rounding to whole pixels moves a ratio by at most 1/min_size around √2.
    assert (ratios <= math.sqrt(2) + 1.0 / min_size).all()
    assert (ratios > 1).all()
    # As few rungs as the factor allows.
    assert len(ladder) == 1 + math.ceil(math.log(size / min_size) / math.log(math.sqrt(2))
                                        - 1e-9)
    if expected is not None:
        assert ladder == expected


def test_ladder_and_iterations_refused():
    for bad in [(8, 64), (128, 64)]:
        with pytest.raises(ValueError, match="min size"):
            multiscale.size_ladder(*bad)
    assert multiscale.scale_iterations(5, 3) == (5, 5, 5)
    assert multiscale.scale_iterations([4, 3, 2], 3) == (4, 3, 2)
    assert multiscale.scale_iterations([4, 3], 3) == (4, 3, 3)      # the last repeats
    with pytest.raises(ValueError, match="ladder of 3"):
        multiscale.scale_iterations([4, 3, 2, 1], 3)
    with pytest.raises(ValueError, match="at least 1"):
        multiscale.scale_iterations([4, 0, 1], 3)


SOLVER = nstjax.Solver(optimizer="adam", lr=0.02)
WEIGHTS = nstjax.loss_weights(nstjax.Objective(), style_weight=1e3)


def test_ladder_runs_every_rung_warm_started(tiny_vgg, monkeypatch):
    """Each rung solves at its size, from the previous result upsampled, with its own
    targets (content and style resized by the rung's factor), and the iteration counts.
    Two rungs: each costs three compilations, most of this test's time."""
    content = jnp.asarray(make_image(48, 64, seed=1))
    style = jnp.asarray(make_image(40, 40, seed=2))
    calls = []
    real = multiscale.stylize

    def spy(vgg, content_k, styles_k, *, init, solver, **kw):
        calls.append(dict(content=np.asarray(content_k), style=np.asarray(styles_k[0]),
                          init=np.asarray(init), max_iter=solver.max_iter))
        out = real(vgg, content_k, styles_k, init=init, solver=solver, **kw)
        calls[-1]["out"] = np.asarray(out.image)
        return out

    monkeypatch.setattr(multiscale, "stylize", spy)
    seen = []
    result = multiscale.stylize_multiscale(
        tiny_vgg, content, style, key=jax.random.PRNGKey(0), min_size=48, iters=[3, 4],
        solver=SOLVER, weights=WEIGHTS,
        callbacks=Callbacks(progress=lambda i, v: seen.append(i)))
    assert [c["content"].shape[:2] for c in calls] == [(36, 48), (48, 64)]
    assert [c["style"].shape[:2] for c in calls] == [(30, 30), (40, 40)]
    assert [c["max_iter"] for c in calls] == [3, 4]
    assert tuple(s.result.image.shape[:2] for s in result.stages) == ((36, 48), (48, 64))
    assert [s.name for s in result.stages] == ["48×36", "64×48"]
    # First rung starts at the resized content; later rungs at the previous result, upsampled.
    np.testing.assert_allclose(calls[0]["init"], calls[0]["content"], atol=0)
    for prev, nxt in zip(calls[:-1], calls[1:]):
        up = np.asarray(multiscale.resize_image(prev["out"], nxt["init"].shape[:2]))
        np.testing.assert_allclose(nxt["init"], up, atol=1e-6)
        assert np.abs(nxt["init"] - nxt["content"]).max() > 1e-3   # really warm, not content
    # The last rung is the full-size problem (content and style unresized).
    np.testing.assert_array_equal(calls[-1]["content"], np.asarray(content))
    np.testing.assert_array_equal(calls[-1]["style"], np.asarray(style))
    assert result.image.shape == content.shape and result.n_iter == 7
    assert len(result.history) == 7 and seen[-1] == 7 and seen == sorted(seen)
    np.testing.assert_allclose(np.asarray(result.image), calls[-1]["out"])


def test_add_detail_warm_start(tiny_vgg, monkeypatch):
    """``add_detail``: the next rung starts at the upsampled result plus the content's band
    that upsampling lost, ``content_k − up(down(content))`` (programs of the test above)."""
    content = jnp.asarray(make_image(48, 64, seed=1))
    style = jnp.asarray(make_image(40, 40, seed=2))
    calls, real = [], multiscale.stylize

    def spy(vgg, content_k, styles_k, *, init, **kw):
        out = real(vgg, content_k, styles_k, init=init, **kw)
        calls.append((np.asarray(init), np.asarray(out.image)))
        return out

    monkeypatch.setattr(multiscale, "stylize", spy)
    multiscale.stylize_multiscale(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                                  min_size=48, iters=[3, 4], solver=SOLVER, weights=WEIGHTS,
                                  add_detail=True)
    up = lambda x, shape: np.asarray(multiscale.resize_image(x, shape))  # noqa: E731
    lost = np.asarray(content) - up(up(content, (36, 48)), (48, 64))
    want = np.clip(up(calls[0][1], (48, 64)) + lost, 0, 1)
    np.testing.assert_allclose(calls[1][0], want, atol=1e-6)
    assert np.abs(lost).max() > 0.05          # the band is not empty


def test_single_rung_is_stylize(tiny_vgg):
    """min_size = size: exactly one ordinary solve (the shapes and solver of the test above,
    so its compiled programs are reused)."""
    content = jnp.asarray(make_image(48, 64, seed=3))
    style = jnp.asarray(make_image(40, 40, seed=4))
    one = nstjax.stylize(tiny_vgg, content, style, key=jax.random.fold_in(
        jax.random.PRNGKey(0), 0), solver=dataclasses.replace(SOLVER, max_iter=4),
        weights=WEIGHTS)
    ladder = multiscale.stylize_multiscale(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                                           min_size=64, iters=4, solver=SOLVER,
                                           weights=WEIGHTS)
    np.testing.assert_allclose(np.asarray(ladder.image), np.asarray(one.image), atol=1e-6)
    assert float(ladder.loss) == pytest.approx(float(one.loss), rel=1e-6)


def test_short_edge_too_small_refused(tiny_vgg):
    content = jnp.asarray(make_image(16, 64, seed=5))
    with pytest.raises(ValueError, match="short edge"):
        multiscale.stylize_multiscale(tiny_vgg, content, content, key=jax.random.PRNGKey(0),
                                      min_size=32, iters=1)


@pytest.mark.parametrize("extra,message", [
    (["--scale-iters", "3", "--iters", "5"], "--iters turns off: give --min-size"),
    (["--scale-factor", "2", "--tile", "64"], "--tile turns off: give --min-size"),
    (["--min-size", "8"], "16-pixel minimum"),
    (["--min-size", "64", "--size", "48"], "above the output size"),
    (["--min-size", "24", "--size", "48", "--scale-iters", "3", "2", "2", "1"], "ladder of 3"),
    (["--min-size", "24", "--size", "48", "--scale-iters", "2.5"], "whole numbers"),
])
def test_cli_ladder_flags_refused(tmp_path, capsys, extra, message):
    """Bad ladders are one line and exit 2, before anything is loaded."""
    from nstjax.cli import run
    from nstjax.io.image_writing import save_image
    save_image(tmp_path / "c.png", make_image(36, 48, seed=1))
    code = run(["stylize", "--content", str(tmp_path / "c.png"), "--style",
                str(tmp_path / "c.png"), "--output", str(tmp_path / "o.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err

