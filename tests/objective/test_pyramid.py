"""The Laplacian-pyramid parametrisation (STROTSS ``pyr_lap.py``, NNST ``imagePyramid.py``):
forward and inverse exact, the mosaic a bijection, the 2× bilinear level a closed form, and a
solve on it that every optimiser and a vmapped sweep run."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.objective import pyramid
from nstjax.objective.config import Objective
from nstjax.run import sweeps, transfer
from nstjax.solve.optimize import optimizer_names
from nstjax.solve.solver import Solver

SHAPES = [(37, 50), (64, 64), (1, 9), (17, 2), (128, 96)]


@pytest.mark.parametrize("hw", SHAPES)
@pytest.mark.parametrize("levels", [1, 5, 8, 16])
def test_synthesize_inverts_decompose_and_unpack_inverts_pack(hw, levels):
    x = jax.random.uniform(jax.random.PRNGKey(sum(hw)), hw + (3,))
    levels_ = pyramid.decompose(x, levels)
    assert len(levels_) == pyramid.level_count(*hw, levels) + 1
    np.testing.assert_allclose(pyramid.synthesize(levels_), x, rtol=0, atol=1e-6)
    mosaic = pyramid.pack(levels_)
    assert mosaic.shape == (hw[0] + hw[0] // 2, hw[1], 3)
    assert pyramid.image_shape(mosaic.shape) == hw
    for a, b in zip(pyramid.unpack(mosaic, levels), levels_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(pyramid.decode(pyramid.encode(x, levels), levels), x,
                               rtol=0, atol=1e-6)


def test_image_shape_reads_every_height_back():
    for h in range(1, 300):
        assert pyramid.image_shape((h + h // 2, 7)) == (h, 7)


def test_level_count_stops_at_one_pixel():
    assert pyramid.level_count(256, 171, 5) == 5
    assert pyramid.level_count(256, 171, 16) == 7          # 171 → 85 → … → 1
    assert pyramid.level_shapes(8, 20, 8)[-1] == (1, 2)


def test_half_size_level_is_the_two_by_two_block_mean():
    """A bilinear resize to half size with half-pixel centres and no antialiasing samples
    midway between four pixels: the coarse approximation is their mean, and the detail level
    the image minus the bilinear upsampling of it."""
    x = np.random.default_rng(0).uniform(size=(8, 12, 3)).astype(np.float32)
    fine, coarse = pyramid.decompose(jnp.asarray(x), 1)
    block = x.reshape(4, 2, 6, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse, block, rtol=0, atol=1e-6)
    # the upsampled coarse level of a constant image is that constant: no detail
    const = pyramid.decompose(jnp.full((16, 16, 3), 0.3), 4)
    for detail in const[:-1]:
        np.testing.assert_allclose(detail, 0.0, atol=1e-6)
    np.testing.assert_allclose(const[-1], 0.3, atol=1e-6)


def test_pack_leaves_the_unused_mosaic_zero_and_without_gradient():
    x = jax.random.uniform(jax.random.PRNGKey(1), (20, 24, 3))
    z = pyramid.encode(x, 3)
    used = np.zeros(z.shape, bool)
    used[:20] = True
    col = 0
    for h, w in pyramid.level_shapes(20, 24, 3)[1:]:
        used[20:20 + h, col:col + w] = True
        col += w
    np.testing.assert_array_equal(np.asarray(z)[~used], 0.0)
    g = jax.grad(lambda m: jnp.sum(jnp.sin(pyramid.decode(m, 3))))(z)
    np.testing.assert_array_equal(np.asarray(g)[~used], 0.0)


def test_objective_checks_the_parametrization():
    with pytest.raises(ValueError, match="pixels, laplacian"):
        Objective(parametrization="wavelet")
    with pytest.raises(ValueError, match="1 to 16"):
        Objective(parametrization="laplacian", pyramid_levels=0)


OBJ = Objective(content_layers=("relu1_2",), style_layers=("relu1_1", "relu1_2"),
                parametrization="laplacian", pyramid_levels=3)
KEY = jax.random.PRNGKey(0)


def _inputs():
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    return (jax.random.uniform(k1, (24, 32, 3)), jax.random.uniform(k2, (32, 32, 3)))


@pytest.mark.parametrize("name", optimizer_names())
def test_every_optimiser_lowers_the_objective_on_the_pyramid(tiny_vgg, name):
    """Plain gradient descent takes a smaller step: a coefficient of level ``l`` gathers the
    gradient of ``4^l`` pixels (Adam and RMSprop, STROTSS's and NNST's, do not scale)."""
    content, style = _inputs()
    lr = 0.002 if name == "gd" else 0.05
    res = transfer.stylize(tiny_vgg, content, style, key=KEY, objective=OBJ, init="grey",
                           solver=Solver(optimizer=name, max_iter=6, lr=lr))
    assert res.image.shape == content.shape
    assert float(res.image.min()) >= 0.0 and float(res.image.max()) <= 1.0
    assert float(res.loss) < float(res.history[0])


def test_a_pyramid_start_is_the_start_image():
    """``to_variable`` then ``to_picture`` of the start is the start: a solve of 0
    iterations' picture is its initial image."""
    content, _ = _inputs()
    z = transfer.to_variable(content, OBJ)
    np.testing.assert_allclose(transfer.to_picture(z, OBJ), content, atol=1e-6)


def test_pyramid_differs_from_pixels_and_sweep_members_equal_single_runs(tiny_vgg):
    content, style = _inputs()
    solver = Solver(optimizer="adam", max_iter=8, lr=0.05)
    pixels = transfer.stylize(tiny_vgg, content, style, key=KEY, init="grey", solver=solver,
                              objective=dataclasses.replace(OBJ, parametrization="pixels"))
    res = sweeps.sweep(tiny_vgg, content, style, {"style_weight": [1.0, 100.0]}, key=KEY,
                       objective=OBJ, solver=solver, init="grey")
    # tests/run/test_sweeps.py's Adam tolerances (member against its single run, float32 reassociation)
    for k, beta in enumerate((1.0, 100.0)):
        from nstjax.objective.config import loss_weights
        one = transfer.stylize(tiny_vgg, content, style, key=KEY, objective=OBJ, init="grey",
                               solver=solver, weights=loss_weights(OBJ, style_weight=beta))
        np.testing.assert_allclose(res.images[k], one.image, rtol=0, atol=5e-5)
        np.testing.assert_allclose(res.loss[k], float(one.loss), rtol=5e-5)
    assert float(jnp.abs(res.images[1] - pixels.image).max()) > 1e-3


def test_pyramid_refuses_a_frozen_margin_and_carried_moments(tiny_vgg):
    content, style = _inputs()
    targets = transfer.compute_targets(tiny_vgg, content, [style], objective=OBJ)
    from nstjax.objective.config import loss_weights
    problem = transfer.Problem(tiny_vgg, targets, loss_weights(OBJ), KEY,
                               frozen=jnp.zeros(content.shape[:2] + (1,)))
    with pytest.raises(ValueError, match="frozen margin"):
        transfer.transfer_init(content, problem, Solver(max_iter=2), objective=OBJ)
