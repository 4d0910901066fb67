"""Spatial control (nstjax.objective.masks): mask pyramids, guided statistics, masked gradients.

What is promised, in numbers (tolerances stated per test):

* the pyramid has the spatial shape of the features at every layer (odd sizes included)
  and its values are the closed forms: block means of the pixel mask (``"average"``) or
  minima over each layer's receptive field clipped to the image (``"inside"``);
* feature level: for every registered style method, the gradient of a masked loss with
  respect to the features is exactly 0 at every zero-weight position;
* image level: with ``"inside"`` the masked style's gradient is exactly 0 on every pixel
  outside its mask (through the whole objective: targets, blend, guard); with
  ``"average"`` it is 0 beyond the receptive-field radius of the positive-weight positions
  and not 0 inside that halo (the seam where styles blend);
* content masks and the empty-layer guard.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image

import nstjax
from nstjax.losses import core as losses
from nstjax.losses import (
    get_style_loss,
    style_loss_names,
    style_loss_terms,
    style_targets,
)
from nstjax.model.vgg import LAYERS
from nstjax.objective import masks
from nstjax.objective.config import Objective, loss_weights
from nstjax.objective.terms import compute_targets, objective_terms

ALL_RELU_POOL = tuple(n for n in LAYERS if not n.startswith("conv"))


def _blocks_mean(m, k):
    """Closed form of ``"average"`` after ``k`` pools: means of 2^k × 2^k blocks (cropped)."""
    s = 2 ** k
    h, w = m.shape[0] // s, m.shape[1] // s
    return m[: h * s, : w * s].reshape(h, s, w, s).mean(axis=(1, 3))


def _pools_before(layer):
    return sum(1 for n in LAYERS[: LAYERS.index(layer) + 1] if n.startswith("pool"))


@pytest.mark.parametrize("mode", masks.MASK_MODES)
def test_pyramid_shapes_match_features(tiny_vgg, mode):
    """Odd sizes (37 × 50): every layer's map has its feature map's h × w."""
    image = make_image(37, 50, seed=1)
    feats = nstjax.extract_features(tiny_vgg, image, ALL_RELU_POOL)
    pyr = masks.mask_pyramid(np.ones((37, 50), np.float32), ALL_RELU_POOL, mode=mode)
    for layer in ALL_RELU_POOL:
        assert pyr[layer].shape == feats[layer].shape[:2], layer


def test_average_pyramid_is_block_means():
    """``"average"`` equals the block means of the pixel mask (float32 sums of ≤ 256
    values in [0, 1]: agreement to 1e-6)."""
    rng = np.random.default_rng(0)
    m = rng.uniform(size=(45, 67)).astype(np.float32)
    pyr = masks.mask_pyramid(m, ALL_RELU_POOL)
    for layer in ALL_RELU_POOL:
        np.testing.assert_allclose(np.asarray(pyr[layer]),
                                   _blocks_mean(m.astype(np.float64), _pools_before(layer)),
                                   atol=1e-6, err_msg=layer)
    # a 50 % grey stays 0.5 at every depth, complementary masks sum to 1 at every layer
    comp = masks.mask_pyramid(1.0 - m, ALL_RELU_POOL)
    for layer in ALL_RELU_POOL:
        np.testing.assert_allclose(np.asarray(pyr[layer] + comp[layer]), 1.0, atol=1e-6)


def _receptive_field(layer):
    """``(offset, stride, size)`` of a layer's receptive field in pixels (1-D)."""
    lo, hi, stride = 0, 0, 1           # position i sees pixels [i·stride − lo, i·stride + hi]
    for name in LAYERS[: LAYERS.index(layer) + 1]:
        if name.startswith("conv"):
            lo, hi = lo + stride, hi + stride
        elif name.startswith("pool"):
            hi, stride = hi + stride, 2 * stride
    return lo, hi, stride


@pytest.mark.parametrize("layer", ["relu1_1", "pool1", "relu2_1", "relu3_1", "pool3"])
def test_inside_pyramid_is_min_over_receptive_field(layer):
    """``"inside"`` is exactly the minimum of the pixel mask over each position's receptive
    field, clipped to the image (padding sees nothing of the image)."""
    rng = np.random.default_rng(3)
    m = (rng.uniform(size=(40, 52)) > 0.15).astype(np.float32) * rng.uniform(
        0.5, 1.0, size=(40, 52)).astype(np.float32)
    got = np.asarray(masks.mask_pyramid(m, [layer], mode="inside")[layer])
    lo, hi, stride = _receptive_field(layer)
    want = np.empty_like(got)
    for i in range(got.shape[0]):
        for j in range(got.shape[1]):
            ys = slice(max(i * stride - lo, 0), i * stride + hi + 1)
            xs = slice(max(j * stride - lo, 0), j * stride + hi + 1)
            want[i, j] = m[ys, xs].min()
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------- feature level


def _features(seed, shapes):
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    return {f"l{i}": jax.nn.relu(jax.random.normal(k, s) + 0.5)
            for i, (k, s) in enumerate(zip(keys, shapes))}


@pytest.mark.parametrize("name", sorted(style_loss_names()))
def test_feature_gradient_is_zero_where_weight_is_zero(name):
    """Every registered method, two layers, a soft mask with a zero band: the gradient with
    respect to the features at zero-weight positions is exactly 0 (no tolerance: each
    position's contribution is multiplied by its weight); elsewhere it is not all 0."""
    shapes = [(8, 10, 4), (4, 5, 6)]
    gen = _features(0, shapes)
    sty = _features(1, [(9, 9, 4), (5, 4, 6)])
    targets = style_targets((name,), sty)
    mask_px = np.ones((8, 10), np.float32)
    mask_px[:, :4] = 0.0
    mask_px[:, 4:6] = 0.5
    mask = {"l0": jnp.asarray(mask_px), "l1": jnp.asarray(_blocks_mean(mask_px, 1))}
    method = get_style_loss(name)
    hyper = {name: dict(method.hyper)}

    def loss(f):
        return style_loss_terms((name,), f, targets, jnp.ones(2), hyper,
                                jax.random.PRNGKey(5), masks=mask)[0]

    grads = jax.jit(jax.grad(loss))(gen)
    for layer in ("l0", "l1"):
        g = np.asarray(grads[layer])
        zero = np.asarray(mask[layer]) == 0
        assert np.all(np.isfinite(g))
        assert np.all(g[zero] == 0.0), f"{name} {layer}: gradient where the weight is 0"
    assert np.abs(np.asarray(grads["l0"])).max() > 0, name


# ---------------------------------------------------------------------- image level


H, W = 48, 64


def _two_style_setup(tiny_vgg, mode, style_layers=("relu1_1", "relu2_1", "relu3_1")):
    """Style A on the left 32 columns, style B on the right 32; blend (0, 1) and no
    content weight, so the objective is style B's loss alone."""
    objective = Objective(style_layers=style_layers, content_layers=("relu2_2",))
    content = jnp.asarray(make_image(H, W, seed=0))
    styles = [jnp.asarray(make_image(40, 40, seed=s)) for s in (1, 2)]
    left = np.zeros((H, W), np.float32)
    left[:, :32] = 1.0
    targets = compute_targets(tiny_vgg, content, styles, objective=objective,
                              style_masks=[left, 1.0 - left], mask_mode=mode)
    weights = loss_weights(objective, n_styles=2, content_weight=0.0, style_blend=(0.0, 1.0),
                           tv_weight=0.0)
    x = jnp.asarray(make_image(H, W, seed=7))

    def style_b(img):
        return objective_terms(img, tiny_vgg, targets, weights, jax.random.PRNGKey(0),
                               objective=objective)["total"]

    return np.asarray(jax.jit(jax.grad(style_b))(x))


def test_inside_masks_leave_the_other_region_untouched(tiny_vgg):
    """``"inside"``: style B's loss has exactly zero gradient on every pixel of A's half
    (relu1_1..relu3_1, receptive field up to ±18 pixels), and a non-zero one on B's."""
    g = _two_style_setup(tiny_vgg, "inside")
    assert np.all(g[:, :32] == 0.0)
    assert np.abs(g[:, 32:]).max() > 0


def test_average_masks_reach_across_the_seam_by_the_receptive_field(tiny_vgg):
    """``"average"``: B's positive-weight positions at relu2_1 start at column 16 of 32,
    which sees pixels from 2·16 − 4 = 28 on; relu3_1's first (column 8 of 16) sees from
    4·8 − 10 = 22 on, so B's gradient is exactly 0 on columns < 22 and not 0 on 22-31
    (the halo where the two styles meet)."""
    g = _two_style_setup(tiny_vgg, "average")
    assert np.all(g[:, :22] == 0.0)
    assert np.abs(g[:, 22:32]).max() > 0
    lo, _, stride = _receptive_field("relu3_1")
    assert 8 * stride - lo == 22


def test_masks_of_ones_are_the_unmasked_objective(tiny_vgg):
    """All-white masks give the unmasked objective (relative 1e-5: the same float32 sums
    in another order)."""
    objective = Objective(style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_2",),
                          style_losses=("gram", "bn"))
    content = jnp.asarray(make_image(H, W, seed=0))
    styles = [jnp.asarray(make_image(40, 40, seed=1))]
    weights = loss_weights(objective, n_styles=1, tv_weight=0.0)
    x = jnp.asarray(make_image(H, W, seed=7))
    key = jax.random.PRNGKey(0)
    terms = jax.jit(objective_terms, static_argnames="objective")
    plain = terms(x, tiny_vgg, compute_targets(tiny_vgg, content, styles, objective=objective),
                  weights, key, objective=objective)
    ones = compute_targets(tiny_vgg, content, styles, objective=objective,
                           style_masks=[np.ones((H, W), np.float32)])
    masked = terms(x, tiny_vgg, ones, weights, key, objective=objective)
    for k in ("content", "style", "total"):
        np.testing.assert_allclose(float(masked[k]), float(plain[k]), rtol=1e-5)


def test_empty_deep_layer_is_guarded(tiny_vgg):
    """A 10 × 10 blob eroded (``"inside"``) is empty at relu3_1 (receptive field 40 px):
    the objective stays finite and equals the same objective without that layer (its
    weight set to 0), to relative 1e-6."""
    objective = Objective(style_layers=("relu1_1", "relu3_1"), content_layers=("relu2_2",))
    content = jnp.asarray(make_image(H, W, seed=0))
    styles = [jnp.asarray(make_image(40, 40, seed=1))]
    blob = np.zeros((H, W), np.float32)
    blob[20:30, 25:35] = 1.0
    t = compute_targets(tiny_vgg, content, styles, objective=objective, style_masks=[blob],
                        mask_mode="inside")
    assert float(jnp.sum(t.style_masks[0]["relu3_1"])) == 0.0
    x = jnp.asarray(make_image(H, W, seed=7))
    key = jax.random.PRNGKey(0)
    w = loss_weights(objective, n_styles=1, tv_weight=0.0)
    terms = jax.jit(objective_terms, static_argnames="objective")
    got = terms(x, tiny_vgg, t, w, key, objective=objective)["style"]
    without = terms(x, tiny_vgg, t, w._replace(
        style_layer_weights=jnp.asarray([1.0, 0.0])), key, objective=objective)["style"]
    g = jax.jit(jax.grad(lambda y: objective_terms(y, tiny_vgg, t, w, key,
                                                   objective=objective)["total"]))(x)
    assert np.isfinite(float(got)) and float(got) > 0
    np.testing.assert_allclose(float(got), float(without), rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(g)))


# ------------------------------------------------------------------------ content


@pytest.mark.parametrize("kind", ["sum", "mse"])
def test_content_loss_mask(kind):
    """Ones give the unmasked loss; weights give ½ Σ w‖d‖² or Σ w‖d‖²/(C Σ w)
    (float32, relative 1e-6)."""
    rng = np.random.default_rng(2)
    f, p = rng.normal(size=(2, 6, 7, 5)).astype(np.float32)
    w = rng.uniform(size=(6, 7)).astype(np.float32)
    plain = float(losses.content_loss(f, p, kind=kind))
    np.testing.assert_allclose(float(losses.content_loss(f, p, kind=kind,
                                                         mask=np.ones((6, 7), np.float32))),
                               plain, rtol=1e-6)
    sq = ((f.astype(np.float64) - p) ** 2).sum(-1)
    want = 0.5 * (w * sq).sum() if kind == "sum" else (w * sq).sum() / (5 * w.sum())
    np.testing.assert_allclose(float(losses.content_loss(f, p, kind=kind, mask=w)), want,
                               rtol=1e-6)


def test_content_mask_removes_style_and_weights_content():
    """White on the left quarter (columns < 16): every style map is the erosion of 1 − c,
    0 wherever a position's receptive field touches a kept pixel (relu1_1: columns ≤ 16;
    relu3_1, which sees [4i − 10, 4i + 13]: columns ≤ 6) and 1 beyond; with κ = 10 the
    content maps are 1 + 9c average-pooled (1e-6), with the default κ = 1 there are none."""
    c = np.zeros((H, W), np.float32)
    c[:, :16] = 1.0
    layers = dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu2_2",))
    style_pyr, content_pyr = masks.target_masks((H, W), None, c, n_styles=2, keep_weight=10.0,
                                                **layers)
    assert len(style_pyr) == 2
    for pyr in style_pyr:
        np.testing.assert_array_equal(np.asarray(pyr["relu1_1"])[:, :17], 0.0)
        np.testing.assert_array_equal(np.asarray(pyr["relu1_1"])[:, 17:], 1.0)
        np.testing.assert_array_equal(np.asarray(pyr["relu3_1"])[:, :7], 0.0)
        np.testing.assert_array_equal(np.asarray(pyr["relu3_1"])[:, 7:], 1.0)
    np.testing.assert_allclose(np.asarray(content_pyr["relu2_2"]),
                               _blocks_mean(1.0 + 9.0 * c.astype(np.float64), 1), atol=1e-6)
    assert masks.target_masks((H, W), None, c, n_styles=2, **layers)[1] is None


def test_content_mask_keeps_style_gradient_off_kept_pixels(tiny_vgg):
    """With a content mask over the left half and *average* style masks (style B on the
    right), the style losses have exactly zero gradient on every kept pixel: the kept
    region's erosion is applied whatever the style masks' mode."""
    objective = Objective(style_layers=("relu1_1", "relu2_1", "relu3_1"),
                          content_layers=("relu2_2",))
    content = jnp.asarray(make_image(H, W, seed=0))
    styles = [jnp.asarray(make_image(40, 40, seed=s)) for s in (1, 2)]
    keep = np.zeros((H, W), np.float32)
    keep[:, :24] = 1.0
    right = np.zeros((H, W), np.float32)
    right[:, 32:] = 1.0
    t = compute_targets(tiny_vgg, content, styles, objective=objective,
                        style_masks=[np.ones((H, W), np.float32), right], content_mask=keep)
    w = loss_weights(objective, n_styles=2, content_weight=0.0, tv_weight=0.0)
    g = np.asarray(jax.jit(jax.grad(lambda x: objective_terms(
        x, tiny_vgg, t, w, jax.random.PRNGKey(0), objective=objective)["total"]))(
        jnp.asarray(make_image(H, W, seed=7))))
    assert np.all(g[:, :24] == 0.0)
    assert np.abs(g[:, 24:]).max() > 0


def test_masks_resampled_to_the_content_size():
    """A 24 × 32 mask for a 48 × 64 image is resampled (bilinear) to it: maps of the
    content's pyramid, values in [0, 1]."""
    m = np.zeros((24, 32), np.float32)
    m[:, 16:] = 1.0
    (pyr,), _ = masks.target_masks((H, W), [m], None, n_styles=1,
                                   style_layers=("relu1_1",), content_layers=("relu2_2",))
    r = np.asarray(pyr["relu1_1"])
    assert r.shape == (H, W) and r.min() == 0.0 and r.max() == 1.0
    np.testing.assert_array_equal(r[:, :30], 0.0)
    np.testing.assert_array_equal(r[:, 34:], 1.0)


@pytest.mark.parametrize("style_masks, content_mask, message", [
    ([np.ones((4, 4))], None, "2 style image"),
    ([np.ones((4, 4)), np.full((4, 4), 1.5)], None, r"\[0, 1\]"),
    ([np.ones((4, 4)), np.zeros((4, 4))], None, "style mask 2"),
    ([np.ones((4, 4)), np.ones((4, 4, 3))], None, "H×W"),
    (None, np.ones((4, 4)), "covered by the content mask"),
    ([np.ones((4, 4)), np.ones((4, 4))], np.full((4, 4), np.nan), r"\[0, 1\]"),
])
def test_bad_masks_are_refused(style_masks, content_mask, message):
    with pytest.raises(ValueError, match=message):
        masks.target_masks((8, 8), style_masks, content_mask, n_styles=2,
                           style_layers=("relu1_1",), content_layers=("relu2_2",))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mask mode"):
        masks.mask_pyramid(np.ones((8, 8)), ["relu1_1"], mode="nearest")
