"""Tests of a run description resolved (nstjax.run.resolve): the defaults and the default
ladder, presets, and one message per field, filed under the field."""

from __future__ import annotations

import jax
import pytest

from nstjax.cli import build_parser, common
from nstjax.run import multiscale
from nstjax.run.presets import PRESETS
from nstjax.run.resolve import resolve
from nstjax.run.spec import RunSpec, SpecError


def _cli(*extra) -> RunSpec:
    _, parsers = build_parser(["stylize"])
    args = common.parse_args(parsers["stylize"], ["--demo", "--output", "o.png", *extra])
    return RunSpec.from_arguments(vars(args))


def _ladder(run):
    return None if run.ladder is None else (run.ladder.sizes(run.size), run.ladder.iters)


@pytest.mark.parametrize("extra,size,expected", [
    ([], 256, ((128, 181, 256), (150, 60, 40))),
    (["--scale-iters", "90,30,20"], 256, ((128, 181, 256), (90, 30, 20))),
    (["--scale-factor", "2"], 512, ((128, 256, 512), (150, 60, 40))),
    (["--scale-iters", "7"], 96, ((96,), (7,))),
    (["--scale-factor", "2"], 96, None),
    (["--iters", "30"], 256, None),
    (["--min-size", "64", "--iters", "9"], 128, ((64, 91, 128), (9, 9, 9))),
])
def test_ladder_flags_shape_the_default_ladder(extra, size, expected):
    """Without --min-size, --scale-iters and the other ladder flags act on the default ladder
    (from 128 px, multiscale.DEFAULT_SCALE_ITERS); --iters alone keeps one scale."""
    assert _ladder(resolve(_cli(*extra, "--size", str(size)))) == expected


@pytest.mark.parametrize("extra,expected", [
    ([], "laplacian"),
    (["--scale-iters", "20,10,5"], "laplacian"),
    (["--parametrization", "pixels"], "pixels"),
    (["--iters", "30"], "pixels"),
    (["--min-size", "64"], "pixels"),
    (["--carry-moments", "--optimizer", "adam"], "pixels"),
    (["--preset", "crowsonkb"], "pixels"),
])
def test_the_default_ladder_optimises_a_laplacian_pyramid(extra, expected):
    """multiscale.DEFAULT_PARAMETRIZATION on the default ladder only: a ladder or an image
    the user names, one scale, a preset's recipe or pixel-only --carry-moments keep theirs."""
    run = resolve(_cli(*extra, "--size", "256"))
    assert run.objective.parametrization == expected


def test_the_defaults_of_a_run_are_the_librarys_and_the_commands():
    run = resolve(RunSpec())
    assert run.size == 384 and run.init == "grey" and run.seed == 0
    assert run.ladder.sizes(384)[0] == multiscale.DEFAULT_MIN_SIZE
    assert run.ladder.sizes(384)[-1] == 384 and len(run.ladder.iters) == 5
    assert float(run.weights.style_weight) == 100.0 and run.solver.optimizer == "plbfgs"
    assert resolve(RunSpec(), sweep=True).init == "content"
    assert resolve(RunSpec(), max_size=256).size == 256


def test_every_bad_field_gets_its_own_message():
    form = {"size": "5", "iters": "x", "style_layers": "relu9_9", "style_weight": "-1",
            "optimizer": "nope", "seed": "-3", "init": "sideways", "lr": "fast"}
    with pytest.raises(SpecError) as e:
        resolve(RunSpec.from_arguments(form))
    assert set(e.value.errors) == {"iters", "lr"}          # unreadable text comes first
    assert e.value.errors["iters"] == "--iters: not a whole number: 'x'"
    del form["iters"], form["lr"]
    with pytest.raises(SpecError) as e:
        resolve(RunSpec.from_arguments(form), init_files=False)
    errors = e.value.errors
    assert set(errors) == {"size", "style_layers", "optimizer", "seed", "init"}
    assert errors["size"] == "--size 5 is below the 16-pixel minimum"
    assert "unknown VGG19 layer 'relu9_9'" in errors["style_layers"]
    assert "nope" in errors["optimizer"] and str(e.value) == errors["size"]
    del form["style_layers"], form["size"]
    with pytest.raises(SpecError) as e:
        resolve(RunSpec.from_arguments(form))
    assert e.value.errors["style_weight"] == "style-weight must be >= 0, got -1"
    assert "init" not in e.value.errors                     # a start image's path, then


@pytest.mark.parametrize("arguments,field,words", [
    ({"iters": "30", "scale_iters": "5"}, "scale_iters", "--iters turns off"),
    ({"tile": "auto", "add_detail": True}, "add_detail", "--tile turns off"),
    ({"content_decay": "0"}, "content_decay", "positive number"),
    ({"scale_factor": "1"}, "scale_factor", "above 1"),
    ({"size": "2048"}, "size", "2048 is above this server's 1024-pixel limit"),
    ({"preserve_color": "all"}, "preserve_color", "luminance, histogram"),
    ({"hyper": "mmd-poly.c"}, "hyper", "METHOD.PARAM=VALUE"),
    ({"preset": "nope"}, "preset", "choose from classic"),
    ({"preset": "nnst", "style_loss": "gram"}, "style_loss", "--preset nnst is its own"),
    ({"preset": "nnst", "content_weight": "2"}, "content_weight", "[0, 1]"),
    ({"resample": True, "style_loss": "mmd-gauss"}, "optimizer", "stochastic optimiser"),
])
def test_a_bad_combination_is_one_line_under_its_field(arguments, field, words):
    with pytest.raises(SpecError) as e:
        resolve(RunSpec.from_arguments(arguments), max_size=1024)
    assert field in e.value.errors, e.value.errors
    message = e.value.errors[field]
    assert words in message and "\n" not in message


def test_a_preset_fills_what_is_not_given_and_the_given_overrides():
    run = resolve(RunSpec(preset="classic", style_weight=10.0, size=64))
    settings = PRESETS["classic"].settings
    assert float(run.weights.style_weight) == 10.0
    assert float(run.weights.content_weight) == settings["content_weight"]
    assert run.solver.history_size == 100 and run.solver.max_iter == 500
    assert run.init == "grey" and run.ladder is None and run.objective.tv_loss == "sum"
    crowsonkb = resolve(RunSpec(preset="crowsonkb", size=96))
    assert crowsonkb.ladder.sizes(96) == (96,) and crowsonkb.ladder.iters == (1000,)
    assert crowsonkb.ladder.carry_moments and crowsonkb.solver.average == 0.99
    nnst = resolve(RunSpec(preset="nnst"))
    assert nnst.method == "nnst" and nnst.ladder is None and nnst.solver.max_iter == 200
    assert float(nnst.weights.content_weight) == PRESETS["nnst"].settings["content_weight"]


def test_stylize_run_is_the_driver_its_ladder_names(tiny_vgg):
    """One call for a spec: on a ladder it is stylize_multiscale with the ladder's
    arguments, at one size stylize, bit for bit; NNST's run refuses what its search
    cannot take."""
    import jax.numpy as jnp
    import numpy as np
    from conftest import make_image

    import nstjax
    from nstjax.run.resolve import stylize_run

    content, style = jnp.asarray(make_image(32, 32, 1)), jnp.asarray(make_image(32, 32, 2))
    spec = RunSpec(size=32, min_size=16, scale_iters=(2, 1), style_layers=("relu1_1",),
                   content_layers=("relu2_1",), init="content")
    run = resolve(spec)
    assert run.ladder.sizes(32) == (16, 23, 32) and run.iterations == 4
    got = stylize_run(tiny_vgg, content, style, run)
    want = nstjax.stylize_multiscale(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                                     min_size=16, iters=(2, 1, 1), objective=run.objective,
                                     weights=run.weights, solver=run.solver, init="content")
    np.testing.assert_array_equal(np.asarray(got.image), np.asarray(want.image))
    one = resolve(spec.replace(min_size=None, scale_iters=None, iters=2))
    assert one.ladder is None and one.plan == nstjax.Single()
    got = stylize_run(tiny_vgg, content, style, one)
    want = nstjax.stylize(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                          objective=one.objective, weights=one.weights, solver=one.solver,
                          init="content")
    np.testing.assert_array_equal(np.asarray(got.image), np.asarray(want.image))
    with pytest.raises(ValueError, match="--preset nnst takes no alpha"):
        stylize_run(tiny_vgg, content, style, resolve(RunSpec(preset="nnst")), alpha=0.5)
