"""``--preset``: the classic tools' recipes by name (``nstjax.run.presets``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nstjax.cli import run
from nstjax.run.plans import Ladder, Single
from nstjax.run.presets import CLASSIC_TV, CROWSONKB_LAYERS, PRESETS, get_preset
from nstjax.run.spec import RunSpec


def _stylize(tmp_path, capsys, *flags):
    out = tmp_path / "out.png"
    code = run(["stylize", "--demo", "--size", "48", "--output", str(out), "--no-progress",
                *flags])
    err = capsys.readouterr().err
    record = json.loads((tmp_path / "out.png.json").read_text()) if code == 0 else None
    return code, err, record


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_builds_and_runs_three_iterations(tmp_path, capsys, name):
    code, err, record = _stylize(tmp_path, capsys, "--preset", name, "--iters", "3",
                                 *(["--scale-iters", "3"] if "min_size" in
                                   PRESETS[name].settings else []))
    assert code == 0, err
    assert record["arguments"]["preset"] == name
    if PRESETS[name].method == "nnst":      # 3 steps at its one scale and in the last pass
        assert record["method"] == "nnst" and record["iterations"] == 6
        return
    assert record["iterations"] == 3
    preset = PRESETS[name]
    for key in ("optimizer", "parametrization", "content_loss"):
        if key in preset.settings:
            where = record["solver"] if key == "optimizer" else record["objective"]
            assert where[key] == preset.settings[key]


def test_a_flag_beside_a_preset_overrides_it(tmp_path, capsys):
    code, err, record = _stylize(tmp_path, capsys, "--preset", "classic", "--iters", "2",
                                 "--style-weight", "7")
    assert code == 0, err
    np.testing.assert_allclose(record["loss_weights"]["style_weight"], 7.0)
    np.testing.assert_allclose(record["loss_weights"]["content_weight"], 5.0)


def test_classic_is_the_lua_tools_objective():
    """neural_style.lua: ``5·mean(F−P)²`` at relu4_2, ``100·mean((G−A)/(CHW))²`` at five
    layers, TV ``1e-3 · ½ Σ Δx²`` in its 0-256 units, L-BFGS history 100, the mean colour."""
    run = RunSpec(preset="classic", size=256).resolve()
    objective, solver, weights = run.objective, run.solver, run.weights
    assert objective.style_losses == ("gram-chw",) and objective.content_loss == "mse"
    assert objective.content_layers == ("relu4_2",) and len(objective.style_layers) == 5
    assert float(weights.content_weight) == 5.0 and float(weights.style_weight) == 100.0
    np.testing.assert_allclose(weights.style_scales, [1.0])
    np.testing.assert_allclose(weights.style_layer_weights, np.ones(5))
    assert objective.tv_loss == "sum"
    assert CLASSIC_TV == pytest.approx(1e-3 * 0.5 * 256 ** 2)
    assert solver.history_size == 100 and solver.max_iter == 500
    assert run.init == "grey" and run.plan == Single()


def test_crowsonkb_layer_weights_are_its_normalised_ratios():
    assert sum(CROWSONKB_LAYERS) == pytest.approx(1.0)
    np.testing.assert_allclose(np.asarray(CROWSONKB_LAYERS) / CROWSONKB_LAYERS[-1],
                               [256, 64, 16, 4, 1])
    run = RunSpec(preset="crowsonkb", size=256).resolve()
    assert isinstance(run.plan, Ladder) and run.plan.sizes(256) == (128, 181, 256)
    assert run.plan.iters == (1000, 500, 500) and run.plan.carry_moments
    assert run.solver.optimizer == "adam" and run.solver.average == 0.99


def test_strotss_runs_on_the_pyramid_with_halved_content():
    run = RunSpec(preset="strotss", size=256).resolve()
    assert run.objective.parametrization == "laplacian"
    assert run.objective.content_loss == "self-similarity"
    assert run.plan.factor == 2.0 and run.plan.content_decay == 0.5 and run.plan.add_detail
    assert run.plan.sizes(256) == (64, 128, 256)
    assert run.solver.optimizer == "rmsprop"


def test_unknown_preset_and_refused_combinations_are_one_line(tmp_path, capsys):
    code, err, _ = _stylize(tmp_path, capsys, "--preset", "nope")
    assert code == 2 and "classic, crowsonkb, strotss, nnst" in err.replace("'", "")
    assert len(err.strip().splitlines()) == 1
    code, err, _ = _stylize(tmp_path, capsys, "--preset", "crowsonkb", "--optimizer",
                            "plbfgs")
    assert code == 2 and "adam only" in err and len(err.strip().splitlines()) == 1
    code, err, _ = _stylize(tmp_path, capsys, "--preset", "strotss", "--tile", "32")
    assert code == 2 and "pyramid" in err and len(err.strip().splitlines()) == 1
    code, err, _ = _stylize(tmp_path, capsys, "--preset", "nnst", "--style-loss", "gram")
    assert code == 2 and "its own method" in err and len(err.strip().splitlines()) == 1
    code, err, _ = _stylize(tmp_path, capsys, "--preset", "nnst", "--content-weight", "2")
    assert code == 2 and "[0, 1]" in err and len(err.strip().splitlines()) == 1
    code = run(["sweep", "--demo", "--size", "48", "--preset", "nnst", "--content-weight",
                "0.1,0.2", "--output", str(tmp_path / "sweep")])
    err = capsys.readouterr().err
    assert code == 2 and "stylize only" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_nnst_library_arguments_are_the_authors_defaults():
    run = RunSpec(preset="nnst").resolve()
    arguments = run.nnst_arguments()
    assert run.method == "nnst" and arguments.pop("key").shape == (2,)
    assert arguments == {"iters": 200, "lr": 2e-3, "alpha": 0.75}


def test_stylize_run_of_nnst_refuses_what_its_search_cannot_take():
    from nstjax.run.resolve import stylize_run

    run = RunSpec(preset="nnst").resolve()
    with pytest.raises(ValueError, match="takes no style_masks"):
        stylize_run(None, None, None, run, style_masks=[None])
