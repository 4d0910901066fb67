"""Feature inversion (issue 12): the batched explorer, its procedures and ``nstjax invert``.

NumPy references are written from the equations (channel means, eq. 1.6's pair count,
Table 1.1), not from the library's helpers.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from nstjax import Status, extract_features
from nstjax.cli import run
from nstjax.io.image import load_image
from nstjax.run import inversion as inv
from nstjax.solve.solver import Solver

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def image():
    return make_image(24, 24, seed=3)


PROBES = ["gram", "moments@1", "channel-mmd", "channel-mmd@sum"]
LAYERS = [("relu1_1",), ("relu2_1",)]
SOLVER = Solver("adam", 60, lr=0.05)
BUDGETS = [[60, 60], [60, 40], [5, 5], [5, 5]]


@pytest.fixture(scope="module")
def grid(tiny_vgg, image):
    """One batched run (one compiled program) shared by the tests: 4 probes × 2 layers."""
    return inv.invert(tiny_vgg, image, PROBES, LAYERS, key=KEY, solver=SOLVER, budgets=BUDGETS)


def test_gram_inversion_lowers_the_loss_by_orders_of_magnitude(grid):
    # Gram at one layer from uniform noise: the loss falls at least 100× in 60 Adam
    # iterations on a 24 px image (measured: ~1e4× with the tiny VGG).
    ratio = grid.loss[0] / grid.initial_loss[0]
    assert np.all(ratio < 1e-2), ratio
    assert grid.images.shape == (4, 2, 24, 24, 3)
    assert np.all(grid.loss[1] / grid.initial_loss[1] < 1e-2)     # moments N = 1 too
    assert np.all((grid.images >= 0) & (grid.images <= 1))


def test_moments_n1_match_the_channel_means(tiny_vgg, image, grid):
    # stylerep eq. 1.4 with N = 1 is ψ·Σ_j (μ_j(s) − μ_j(n))² / c: after inversion the
    # channel means μ_j = 1/M Σ_p F_pj of the result equal the image's (NumPy means).
    for col, layer in enumerate(("relu1_1", "relu2_1")):
        want = np.asarray(extract_features(tiny_vgg, image, [layer])[layer], np.float64)
        got = np.asarray(extract_features(tiny_vgg, grid.images[1, col], [layer])[layer],
                         np.float64)
        mu_want, mu_got = want.mean(axis=(0, 1)), got.mean(axis=(0, 1))
        np.testing.assert_allclose(mu_got, mu_want, rtol=0.02, atol=0.02 * mu_want.max())
        # ... while the spatial layout is free: the result is not the image.
        assert np.abs(grid.images[1, col] - image).mean() > 0.05


def test_each_cell_stops_at_its_own_budget(grid):
    np.testing.assert_array_equal(grid.n_iter, BUDGETS)
    assert np.all(grid.status[grid.n_iter == grid.budgets] == Status.MAX_ITER)
    assert grid.history.shape[-1] == 60
    assert np.all(np.isnan(grid.history[1, 1, 40:]))


def test_same_seed_same_grid_other_seed_other_grid(tiny_vgg, image, grid):
    again = inv.invert(tiny_vgg, image, PROBES, LAYERS, key=KEY, solver=SOLVER,
                       budgets=BUDGETS)                    # the same compiled program
    np.testing.assert_array_equal(again.images, grid.images)
    np.testing.assert_array_equal(again.loss, grid.loss)
    other = inv.invert(tiny_vgg, image, PROBES, LAYERS, key=jax.random.PRNGKey(1),
                       solver=SOLVER, budgets=BUDGETS)
    assert np.abs(other.images - grid.images).mean() > 0.05


def test_cell_weights_switch_on_one_probe_at_its_layers():
    o = inv.grid_objective([inv.parse_probe("gram"), inv.parse_probe("bn:0.5,mmd-poly:0.5"),
                            inv.parse_probe("content")], [("relu1_1",), ("relu1_1", "relu3_1")])
    assert o.style_losses == ("gram", "bn", "mmd-poly") and o.style_layers == ("relu1_1",
                                                                              "relu3_1")
    w = inv.cell_weights(o, inv.parse_probe("gram"), ["relu3_1"])
    assert np.asarray(w.style_layer_weights).tolist() == [0, 1]
    assert np.asarray(w.style_mix).tolist() == [1, 0, 0]
    assert np.asarray(w.style_scales).tolist() == [1, 1, 1]      # one method: unscaled
    assert float(w.content_weight) == 0 and float(w.style_weight) == 1
    f = inv.cell_weights(o, inv.parse_probe("bn:0.5,mmd-poly:0.5"), ["relu1_1", "relu3_1"])
    assert np.asarray(f.style_mix).tolist() == [0, 0.5, 0.5]
    np.testing.assert_allclose(f.style_scales, [0.3, 9.6e4, 0.33], rtol=1e-6)  # registry λ
    c = inv.cell_weights(o, inv.parse_probe("content"), ["relu1_1"])
    assert float(c.style_weight) == 0 and np.asarray(c.content_layer_weights).tolist() == [1, 0]


CONTENT_SOLVER = Solver("plbfgs", 150)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("invert") / "image.png"
    Image.fromarray((make_image(32, 32, seed=5) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.mark.real_weights
def test_content_inversion_at_relu1_1_recovers_the_image(real_vgg, small_png):
    # relu1_1 is 64 ReLU'd 3×3 filters of the RGB image: 64 equations per pixel for 3
    # unknowns, so the image is determined wherever some filters are active.  Tolerance:
    # mean |x − image| < 0.02 (2% of the range) after 150 L-BFGS iterations at 32 px;
    # the residual sits in the 1-pixel border (zero padding) and in dark, flat patches
    # where most ReLUs are off.  Noise starts 0.33 away on average.
    image = load_image(small_png, size=32)
    res = inv.invert(real_vgg, image, ["content"], [("relu1_1",)], key=KEY,
                     solver=CONTENT_SOLVER)
    err = np.abs(res.images[0, 0] - image)
    assert err.mean() < 0.02, err.mean()
    assert res.loss[0, 0] < 1e-3 * res.initial_loss[0, 0]


def test_parse_probe_and_errors():
    p = inv.parse_probe("moments@2")
    assert p.methods == ("moments",) and dict(p.hyper) == {"moments.w1": 1.0, "moments.w2": 1.0,
                                                           "moments.w3": 0.0, "moments.w4": 0.0}
    assert inv.parse_probe("bn:0.5,mmd-poly:0.5").mix == (0.5, 0.5)
    assert inv.parse_probe("content").is_content
    for bad, match in (("moments@5", "N = 1"), ("gram@3", "only @ forms"),
                       ("nope", "unknown style loss")):
        with pytest.raises(ValueError, match=match):
            inv.parse_probe(bad)
    assert inv.cumulative_layer_sets(["relu1_1", "relu2_1", "relu3_1"]) == [
        ("relu1_1",), ("relu1_1", "relu2_1"), ("relu1_1", "relu2_1", "relu3_1")]


def test_refusals(tiny_vgg, image):
    with pytest.raises(ValueError, match="line search"):
        inv.invert(tiny_vgg, image, ["mmd-gauss"], [("relu1_1",)], key=KEY,
                   solver=Solver("plbfgs", 2), resample=True)
    with pytest.raises(ValueError, match="budgets"):
        inv.invert(tiny_vgg, image, ["gram"], [("relu1_1",)], key=KEY, budgets=[[0]])


def test_stylerep_procedure_is_table_1_1():
    p = inv.stylerep_procedure()
    assert [q.label for q in p.probes] == ["gram-gamma", "channel-mmd@sum", "moments@1",
                                           "moments@2", "moments@3", "moments@4"]
    assert p.layer_sets == (("relu1_1",), ("relu1_2",), ("relu2_1",), ("relu2_2",))
    # ι + 240·1000: Table 1.1's budget plus all extensions (θ can stop a cell earlier).
    table = np.array([[100, 150, 200, 250], [100, 150, 200, 250], [20, 40, 60, 80],
                      [40, 80, 120, 160], [60, 120, 180, 240], [100, 200, 300, 400]]) * 1000
    np.testing.assert_array_equal(p.budgets, table + 240_000)
    s = p.solver
    assert (s.optimizer, s.lr, s.threshold, s.max_iter) == ("adam", 1e-3, 1e-5, 640_000)
    assert not s.box and not s.normalize          # the raw loss, no clipping (§1.3)
    np.testing.assert_array_equal(inv.stylerep_procedure(budget_scale=1e-3).budgets,
                                  np.round((table + 240_000) * 1e-3))
    q = inv.li2017_procedure()
    assert (q.normalization, q.init, q.resample, q.pooling) == ("paper", "grey", True, "avg")
    assert q.layer_sets[2] == ("relu1_1", "relu2_1", "relu3_1") and len(q.layer_sets) == 5
    assert q.solver.tol_x == 0.005 and q.solver.max_iter == 1000


@pytest.mark.parametrize("alias, key", [("seed002", "stylerep"), ("seed003", "li2017")])
def test_old_procedure_names_are_aliases_of_the_paper_keys(alias, key):
    # The internal labels were flags before the paper keys: still accepted, the same set-up.
    from nstjax.cli import build_parser
    from nstjax.cli.invert import _setup
    _, parsers = build_parser(only=["invert"])
    parse = parsers["invert"].parse_args
    old, new = parse(["--demo", "--procedure", alias]), parse(["--demo", "--procedure", key])
    assert old.procedure == new.procedure == key
    a, b = _setup(old), _setup(new)
    assert a[:2] == b[:2] and a[2]["solver"] == b[2]["solver"]
    np.testing.assert_array_equal(np.asarray(a[2]["budgets"], float),
                                  np.asarray(b[2]["budgets"], float))
    assert key in inv.PROCEDURES
    assert alias not in parsers["invert"].format_help()     # shown by its key only


@pytest.mark.real_weights
def test_cli_writes_grid_and_json(tmp_path, real_vgg, small_png, capsys):
    # The content inversion above through the command (the same compiled program).
    out = tmp_path / "inv.png"
    before = small_png.read_bytes()
    argv = ["invert", "--image", str(small_png), "--size", "32", "--stats", "content",
            "--layers", "relu1_1", "--optimizer", "plbfgs", "--iters", "150", "--no-progress",
            "--output", str(out)]
    assert run(argv) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "inv.png.json").read_text())
    assert meta["rows"] == ["content"] and meta["columns"] == [["relu1_1"]]
    cell = meta["cells"][0]
    assert cell["budget"] == 150 and cell["status"] in ("max_iter", "converged")
    assert cell["final_loss"] < 1e-3 * cell["initial_loss"]
    assert small_png.read_bytes() == before                          # input untouched
    first = out.read_bytes()
    assert run(argv) == 0                                   # the same seed, the same grid
    assert out.read_bytes() == first
    assert json.loads((tmp_path / "inv.png.json").read_text())["cells"] == meta["cells"]


@pytest.mark.parametrize("extra, match", [
    (["--stats", "moments@9"], "moments@N"),
    (["--optimizer", "plbfgs", "--resample", "--stats", "mmd-gauss"], "line search"),
    (["--budget-scale", "0.1"], "stylerep"),
    (["--init", "style"], "noise, grey or content"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, extra, match):
    code = run(["invert", "--demo", "--size", "20", "--iters", "1", "--output",
                str(tmp_path / "x.png"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and match in err and "\n" not in err and "Traceback" not in err
