"""The library's entry points check their inputs where they are entered (issue 20): a bad
image or weight is a ``ValueError`` that names the argument, never an error from deep in
JAX, a NaN picture or an ``inf`` loss."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import make_image

import nstjax

GOOD = make_image(32, 32, seed=1)
STYLE = make_image(32, 32, seed=2)
SOLVER = nstjax.Solver(optimizer="adam", max_iter=1)

BAD_CONTENT = [
    ((GOOD * 255).astype(np.uint8), "uint8"),
    (GOOD * 255.0, "give values in [0, 1]"),
    (np.where(np.arange(32)[:, None, None] == 3, np.nan, GOOD), "NaN"),
    (make_image(8, 8), "below 16 pixels"),
    (GOOD[..., :2], "H×W×3"),
    (None, "None"),
]


@pytest.mark.parametrize("content, says", BAD_CONTENT,
                         ids=["uint8", "0-255 float", "nan", "8x8", "two channels", "none"])
def test_stylize_refuses_a_bad_content_naming_it(tiny_vgg, content, says):
    with pytest.raises(ValueError, match="content") as e:
        nstjax.stylize(tiny_vgg, content, STYLE, key=jax.random.PRNGKey(0), solver=SOLVER)
    assert says in str(e.value)


@pytest.mark.parametrize("style, says", [(None, "style"), ("starry.jpg", "style"),
                                         ([], "no style image"),
                                         ([STYLE, STYLE * 2.0], "style 2")])
def test_stylize_refuses_a_bad_style_naming_it(tiny_vgg, style, says):
    with pytest.raises(ValueError, match=says):
        nstjax.stylize(tiny_vgg, GOOD, style, key=jax.random.PRNGKey(0), solver=SOLVER)


@pytest.mark.parametrize("entry", ["compute_targets", "sweep", "invert", "score",
                                   "stylize_multiscale", "stylize_tiled"])
def test_every_entry_point_checks_its_images(tiny_vgg, entry):
    bad = (GOOD * 255).astype(np.uint8)
    key = jax.random.PRNGKey(0)
    calls = {
        "compute_targets": lambda: nstjax.compute_targets(tiny_vgg, bad, [STYLE],
                                                          objective=nstjax.Objective()),
        "sweep": lambda: nstjax.sweep(tiny_vgg, bad, STYLE, {"style_weight": [1, 10]},
                                      key=key, solver=SOLVER),
        "invert": lambda: nstjax.invert(tiny_vgg, bad, ["gram"], [["relu1_1"]], key=key,
                                        solver=SOLVER),
        "score": lambda: nstjax.score(tiny_vgg, GOOD, STYLE, [bad]),
        "stylize_multiscale": lambda: nstjax.stylize_multiscale(
            tiny_vgg, bad, STYLE, key=key, min_size=16, iters=1, solver=SOLVER),
        "stylize_tiled": lambda: nstjax.stylize_tiled(tiny_vgg, bad, STYLE, key=key,
                                                      solver=SOLVER),
    }
    with pytest.raises(ValueError, match="uint8"):
        calls[entry]()


def test_a_weight_that_is_not_a_number_is_named():
    with pytest.raises(ValueError, match="style-weight"):
        nstjax.loss_weights(nstjax.Objective(), style_weight=None)
    with pytest.raises(ValueError, match="style-weight"):
        nstjax.loss_weights(nstjax.Objective(), style_weight="lots")


def test_a_layer_without_positions_is_refused(tiny_vgg):
    with pytest.raises(ValueError, match="pool5 has no positions"):
        nstjax.compute_targets(tiny_vgg, GOOD[:16, :16], [STYLE],
                               objective=nstjax.Objective(content_layers=("pool5",)))


def test_inside_jit_only_the_shape_is_checked(tiny_vgg):
    """Under ``jit`` the pixel values are unknown: the check passes them through, and the
    targets equal the eager ones (float32, 1e-5: the same program, fused differently)."""
    objective = nstjax.Objective()
    traced = jax.jit(lambda c: nstjax.compute_targets(tiny_vgg, c, [STYLE],
                                                      objective=objective))(GOOD)
    eager = nstjax.compute_targets(tiny_vgg, GOOD, [STYLE], objective=objective)
    np.testing.assert_allclose(np.asarray(traced.content["relu4_2"]),
                               np.asarray(eager.content["relu4_2"]), rtol=1e-5, atol=1e-5)
