"""Tests of the one stylize with plans as values (nstjax.run.plans, nstjax.large.plans):
each plan is the driver it names, bit for bit; colour control is applied once around any
plan; what a plan cannot take is refused in one line from one table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image

import nstjax
from nstjax.run import plans

KEY = jax.random.PRNGKey(3)
OBJ = nstjax.Objective(style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_1",))


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(make_image(32, 48, 1)), jnp.asarray(make_image(32, 32, 2))


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
    np.testing.assert_array_equal(np.asarray(a.history), np.asarray(b.history))


def test_each_plan_is_the_driver_it_names(tiny_vgg, images):
    content, style = images
    solver = nstjax.Solver(max_iter=3)
    kw = {"key": KEY, "objective": OBJ, "solver": solver}
    _same(nstjax.stylize(tiny_vgg, content, style, **kw),
          nstjax.run.transfer.stylize(tiny_vgg, content, style, **kw))
    ladder = nstjax.Ladder(min_size=24, iters=(2, 1))
    assert ladder.sizes(48) == (24, 34, 48) and ladder.iterations(48) == (2, 1, 1)
    _same(nstjax.stylize(tiny_vgg, content, style, plan=ladder, **kw),
          nstjax.stylize_multiscale(tiny_vgg, content, style, min_size=24, iters=(2, 1), **kw))
    tiles = nstjax.Tiles(tile=32, overlap=16, margin=0, coarse=0)
    _same(nstjax.stylize(tiny_vgg, content, style, plan=tiles, **kw),
          nstjax.stylize_tiled(tiny_vgg, content, style, tile=32, overlap=16, margin=0,
                               coarse=0, **kw))


@pytest.mark.parametrize("color,old", [
    (nstjax.Luminance(), {"preserve_color": "luminance"}),
    (nstjax.Histogram("eigen"), {"preserve_color": "histogram", "color_match": "eigen"}),
])
def test_colour_is_applied_once_around_any_plan(tiny_vgg, images, color, old):
    """color= is the older preserve_color=/color_match= spelled as a value, on a ladder as
    at one size; with Luminance the result keeps the content's chroma exactly."""
    content, style = images
    kw = {"key": KEY, "objective": OBJ, "solver": nstjax.Solver(max_iter=2)}
    plan = nstjax.Ladder(min_size=24, iters=1)
    new = nstjax.stylize(tiny_vgg, content, style, plan=plan, color=color, **kw)
    _same(new, nstjax.stylize_multiscale(tiny_vgg, content, style, min_size=24, iters=1,
                                         **old, **kw))
    _same(nstjax.stylize(tiny_vgg, content, style, color=color, **kw),
          nstjax.stylize(tiny_vgg, content, style, **old, **kw))
    if color.preserve == "luminance":
        # YIQ: the chroma (I, Q rows) of the result is the content's
        iq = np.array([[0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        got = np.asarray(new.image) @ iq.T
        want = np.asarray(content) @ iq.T
        inside = (np.asarray(new.image) > 0.01).all(-1) & (np.asarray(new.image) < 0.99).all(-1)
        np.testing.assert_allclose(got[inside], want[inside], atol=2e-3)


@pytest.mark.parametrize("plan,given,words", [
    (nstjax.Tiles(), {"style_masks": [np.ones((8, 8))]}, "Tiles plan does not take style "
     "masks (plans that do: Single, Ladder)"),
    (nstjax.Sharded(), {"alpha": np.ones((8, 8))}, "Sharded plan does not take an alpha"),
    (nstjax.Ladder(), {"warm_start": object()}, "does not take a warm start (plans that "
     "do: Single)"),
    (nstjax.Tiles(), {"init_image": True}, "does not take a start image"),
    ("tiles", {}, "plan must be one of Single, Ladder, Tiles, Sharded"),
])
def test_what_a_plan_cannot_take_is_one_line(plan, given, words):
    with pytest.raises(ValueError) as e:
        plans.check_plan(plan, **given)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_stylize_refuses_before_any_work(tiny_vgg, images):
    content, style = images
    with pytest.raises(ValueError, match="Tiles plan does not take a content mask"):
        nstjax.stylize(tiny_vgg, content, style, key=KEY, plan=nstjax.Tiles(),
                       content_mask=np.ones(content.shape[:2]))
    with pytest.raises(ValueError, match="not both"):
        nstjax.stylize(tiny_vgg, content, style, key=KEY, color=nstjax.Luminance(),
                       preserve_color="luminance")
    with pytest.raises(ValueError, match="luminance, histogram"):
        nstjax.stylize(tiny_vgg, content, style, key=KEY, preserve_color="all")
