"""Tiled stylisation: tile layout, feathered blend, objective vs untiled, no seams."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.objective import total_loss
from nstjax.tiling import blend, blend_weights, full_targets, stylize_tiled, tile_starts
from tests.conftest import make_image


def test_tile_starts_cover_with_overlap():
    for length, tile, overlap in [(100, 48, 16), (6000, 1024, 128), (4000, 1024, 128),
                                  (48, 48, 8), (30, 48, 8)]:
        starts = tile_starts(length, tile, overlap)
        size = min(tile, length)
        assert starts[0] == 0 and starts[-1] + size == length
        gaps = np.diff(starts)
        assert np.all(gaps > 0) and np.all(size - gaps >= overlap - 8), (length, starts)


def test_blend_of_identical_tiles_is_the_image():
    """Feathering is a normalised average: tiles cut from one image give it back exactly."""
    image = make_image(70, 90, seed=3)
    ys, xs = tile_starts(70, 40, 12), tile_starts(90, 40, 12)
    corners = [(y, x) for y in ys for x in xs]
    tiles = [image[y:y + 40, x:x + 40] for y, x in corners]
    np.testing.assert_allclose(blend(tiles, corners, image.shape, 12), image, atol=1e-6)
    w = blend_weights(16, 40, 90, 12)
    assert w[0] < 0.1 and w[-1] < 0.1 and w[20] == 1.0


def _border_and_inside_steps(image, starts, size):
    """Mean |difference| between neighbouring columns, at the tiles' edges and elsewhere."""
    d = np.abs(np.diff(np.asarray(image), axis=1)).mean(axis=(0, 2))      # [W - 1]
    edges = {s - 1 for s in starts[1:]} | {s + size - 1 for s in starts[:-1]}
    edges = sorted(e for e in edges if 0 <= e < d.size)
    inside = np.delete(d, edges)
    return d[edges], inside


def test_tiled_objective_and_no_seam(tiny_vgg):
    """64×112 content in three 64-pixel tiles overlapping by ≥ 32, style layers to relu3_1
    (the tiny tiles must hold the layers' receptive fields), 30 Adam steps per tile and for
    the untiled run.  The blended image's full objective is within 25% of the untiled run's
    (measured 17% above: tiles this small lose the context across their borders; the gap
    does not close with 60 steps) and well below the content image's; the column steps at
    the tiles' edges are no larger than the largest step inside the tiles."""
    content = jnp.asarray(make_image(64, 112, seed=1))
    style = jnp.asarray(make_image(64, 64, seed=2))
    key = jax.random.PRNGKey(0)
    objective = nstjax.Objective(style_layers=("relu1_1", "relu2_1", "relu3_1"),
                                 content_layers=("relu3_1",))
    weights = nstjax.loss_weights(objective, style_weight=1e3)
    solver = nstjax.Solver(optimizer="adam", max_iter=30, lr=0.03)
    tiled = stylize_tiled(tiny_vgg, content, style, key=key, objective=objective,
                          weights=weights, solver=solver, tile=64, overlap=32, coarse=0)
    assert len(tiled.tiles) == 3 and tiled.tile_shape == (64, 64)
    plain = nstjax.stylize(tiny_vgg, content, style, key=key, objective=objective,
                           weights=weights, solver=solver)
    targets = full_targets(tiny_vgg, content, style, objective=objective)

    def full(x):
        return float(total_loss(x, tiny_vgg, targets, weights, key, objective=objective))

    assert full(tiled.image) <= 1.25 * full(plain.image), (full(tiled.image),
                                                           full(plain.image))
    assert full(tiled.image) < 0.6 * full(content)        # it did stylise
    xs = sorted({x for _, x in tiled.tiles})
    at_edges, inside = _border_and_inside_steps(tiled.image, xs, 64)
    assert at_edges.max() <= inside.max(), (at_edges, inside.max())


def test_bad_tile_settings_are_refused(tiny_vgg):
    content = jnp.asarray(make_image(64, 64, seed=1))
    with pytest.raises(ValueError, match="tile must be at least"):
        stylize_tiled(tiny_vgg, content, content, key=jax.random.PRNGKey(0), tile=8)
    with pytest.raises(ValueError, match="overlap"):
        stylize_tiled(tiny_vgg, content, content, key=jax.random.PRNGKey(0), tile=48,
                      overlap=48)
