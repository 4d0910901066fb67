"""The configuration: each part validated once where it is made (issue 8, issue 10)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.objective.config import MAX_WEIGHT, Objective, loss_weights, replace_weight
from nstjax.solve.solver import Solver


@pytest.mark.parametrize("kw", [{"style_layers": ("relu9_9",)}, {"style_losses": ("nope",)},
                                {"style_losses": ("gram", "gram")}, {"pooling": "median"},
                                {"content_loss": "l1"}, {"style_losses": ()}])
def test_objective_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Objective(**kw)


def test_objective_canonicalises_and_hashes():
    a = Objective(style_layers=("block1_conv1", "conv_3"), style_losses="gram-chw")
    b = Objective(style_layers=("relu1_1", "conv2_1"))
    assert a.style_layers == ("relu1_1", "conv2_1") and a == b and hash(a) == hash(b)
    assert a.layers == ("relu1_1", "conv2_1", "relu4_2")


@pytest.mark.parametrize("kw", [{"style_weight": -1.0}, {"content_weight": math.nan},
                                {"tv_weight": math.inf}, {"style_weight": 1e40},
                                {"style_layer_weights": (1.0, 2.0)},
                                {"style_blend": (0.0,)}, {"hyper": {"gram.c": 1.0}},
                                {"style_mix": (1.0, 1.0)}])
def test_loss_weights_reject_bad_values(kw):
    with pytest.raises(ValueError):
        loss_weights(Objective(), **kw)


def test_style_blend_is_normalised_and_zero_sum_refused():
    o = Objective()
    a = loss_weights(o, n_styles=2, style_blend=(3.0, 7.0))
    b = loss_weights(o, n_styles=2, style_blend=(0.3, 0.7))
    np.testing.assert_allclose(np.asarray(a.style_blend), [0.3, 0.7], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a.style_blend), np.asarray(b.style_blend), rtol=1e-6)
    with pytest.raises(ValueError, match="sum to 0"):
        loss_weights(o, n_styles=2, style_blend=(0.0, 0.0))
    with pytest.raises(ValueError, match="2 weights for 3"):
        loss_weights(o, n_styles=3, style_blend=(1.0, 1.0))


def test_weight_that_would_overflow_float32_is_refused():
    loss_weights(Objective(), style_weight=MAX_WEIGHT)
    with pytest.raises(ValueError, match="overflow"):
        loss_weights(Objective(), style_weight=MAX_WEIGHT * 10)


def test_replace_weight_checks_like_the_constructor():
    w = loss_weights(Objective(style_losses=("mmd-poly",)))
    assert float(replace_weight(w, "style_weight", 3.0).style_weight) == 3.0
    assert float(replace_weight(w, "hyper.mmd-poly.c", 0.0).hyper["mmd-poly"]["c"]) == 0.0
    for name, value in [("style_weight", -1.0), ("hyper.gram.c", 1.0), ("nope", 1.0),
                        ("style_layer_weights", (1.0,)), ("style_weight", math.nan)]:
        with pytest.raises(ValueError):
            replace_weight(w, name, value)


@pytest.mark.parametrize("kw", [{"optimizer": "sgd"}, {"max_iter": 0}, {"lr": 0.0},
                                {"threshold": math.nan}, {"rtol": -1.0}, {"history_size": 0}])
def test_solver_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Solver(**kw)


def test_solver_is_a_pytree_static_fields_in_the_treedef():
    s = Solver(optimizer="adam", max_iter=7, lr=0.5)
    leaves, treedef = jax.tree.flatten(s)
    assert leaves == [0.5, 0.0, 0.0, -math.inf, 0.0]       # lr, rtol, tol_x, threshold, average
    assert jax.tree.unflatten(treedef, leaves) == s
    f = jax.jit(lambda s: s.lr * s.max_iter)
    assert float(f(s)) == pytest.approx(3.5)
    f(Solver(optimizer="adam", max_iter=7, lr=0.25))
    assert f._cache_size() == 1                       # a traced field: no recompile
    f(Solver(optimizer="adam", max_iter=8, lr=0.25))
    assert f._cache_size() == 2                       # a static field: recompiles
    stacked = Solver(lr=jnp.asarray([0.1, 0.2]), rtol=jnp.zeros(2), tol_x=jnp.zeros(2),
                     threshold=jnp.full(2, -jnp.inf), average=jnp.zeros(2))  # a lr sweep
    np.testing.assert_allclose(np.asarray(jax.vmap(lambda s: s.lr * 2)(stacked)), [0.2, 0.4])


def test_default_hyper_and_names():
    o = Objective(style_losses=("mmd-poly", "moments"))
    assert o.hyper_names() == ("mmd-poly.c", "moments.w1", "moments.w2", "moments.w3",
                               "moments.w4", "moments.literal_psi")
    w = loss_weights(o, hyper={"mmd-poly.c": 0.0})
    assert float(w.hyper["mmd-poly"]["c"]) == 0.0 and float(w.hyper["moments"]["w3"]) == 1.0
    # the registry's λ (balanced against ½Σ at 512 × 768 positions), converted to the
    # default per-position content loss: mean over C·M is 2/(C·M) of ½Σ there
    unit = 2.0 / (512 * 768)
    assert np.asarray(w.style_scales).tolist() == pytest.approx(
        [nstjax.get_style_loss("mmd-poly").scale * unit,
         nstjax.get_style_loss("moments").scale * unit], rel=1e-6)
