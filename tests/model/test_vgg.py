"""Tests of the VGG19 feature extractor (nstjax.model.vgg): names, shapes, pooling, batching,
early stopping, preprocessing, the custom convolution gradient, and the real weights.

Tolerances:

* ``RTOL32 = 1e-5`` (absolute floor ``1e-5 × max|value|``) where the same float32 network is
  evaluated two ways (batched vs single, preprocessing in NumPy vs JAX): XLA may pick a
  different convolution algorithm or round the preprocessing differently, each a few ulp
  (~1e-7 relative) per layer, ~1e-6 after 16 layers; a wrong computation is off by O(1).
* Exact equality where one program computes both sides (a ReLU and its convolution, a
  pool and the ReLU before it, aliases of one layer).
* float64 gradient checks: ``rtol = 1e-12``; both sides sum the same products in a
  different order, ~1e-15 relative.  The float32 variant uses ``rtol = 2e-5``: sums of up to
  ~300 products, each rounding adds ~6e-8 relative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image

from nstjax.io import weights as W
from nstjax.model import vgg
from nstjax.model.vgg import LAYERS, canonical_layer, conv3x3, extract_features

RTOL32 = 1e-5
CAFFE_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
BLOCKS = (2, 2, 4, 4, 4)
TINY_WIDTHS = (4, 4, 8, 8, 8)  # init_random_weights' default


def close32(actual, desired, err_msg=""):
    desired = np.asarray(desired)
    np.testing.assert_allclose(np.asarray(actual), desired, rtol=RTOL32,
                               atol=RTOL32 * float(np.abs(desired).max()), err_msg=err_msg)


def expected_layers():
    """VGG19's 37 named outputs in forward order, written out from the paper's table."""
    out = []
    for b, n in enumerate(BLOCKS, start=1):
        for i in range(1, n + 1):
            out += [f"conv{b}_{i}", f"relu{b}_{i}"]
        out.append(f"pool{b}")
    return out


# ----------------------------------------------------------------------------- names

def test_layer_table_is_vgg19():
    assert list(LAYERS) == expected_layers() and len(LAYERS) == 37


@pytest.mark.parametrize("alias,canonical", [
    ("relu4_2", "relu4_2"), ("block4_conv2", "relu4_2"), ("relu_10", "relu4_2"),
    ("conv4_2", "conv4_2"), ("conv_10", "conv4_2"),
    ("relu_1", "relu1_1"), ("conv_1", "conv1_1"), ("block1_conv1", "relu1_1"),
    ("relu_2", "relu1_2"), ("relu_3", "relu2_1"), ("relu_5", "relu3_1"), ("relu_9", "relu4_1"),
    ("relu_13", "relu5_1"), ("relu_16", "relu5_4"), ("conv_16", "conv5_4"),
    ("block5_conv4", "relu5_4"),
    ("pool_2", "pool1"), ("pool_4", "pool2"), ("pool_8", "pool3"), ("pool_12", "pool4"),
    ("pool_16", "pool5"), ("block1_pool", "pool1"), ("block5_pool", "pool5"), ("pool3", "pool3"),
])
def test_layer_aliases_resolve(alias, canonical):
    assert canonical_layer(alias) == canonical
    assert vgg.canonical_layers([alias, "relu1_1"]) == (canonical, "relu1_1")


def test_every_sequential_tutorial_name_resolves():
    """conv_N / relu_N number the 16 convolutions in order; pool_N follows the last conv."""
    convs = [n for n in expected_layers() if n.startswith("conv")]
    for seq, conv in enumerate(convs, start=1):
        assert canonical_layer(f"conv_{seq}") == conv
        assert canonical_layer(f"relu_{seq}") == conv.replace("conv", "relu")
        b, i = conv[4:].split("_")
        assert canonical_layer(f"block{b}_conv{i}") == conv.replace("conv", "relu")


@pytest.mark.parametrize("bad", ["relu6_1", "conv_17", "relu_0", "pool_3", "block6_conv1",
                                 "block1_conv3", "Relu1_1", "relu1_1 ", "", 5, None])
def test_unknown_layer_raises_value_error_listing_valid_names(bad):
    with pytest.raises(ValueError) as e:
        canonical_layer(bad)
    msg = str(e.value)
    assert repr(bad) in msg
    for name in ("relu1_1", "relu4_2", "conv5_4", "pool5"):
        assert name in msg


def test_extract_features_rejects_bad_arguments(tiny_vgg):
    image = make_image(16, 16)
    with pytest.raises(ValueError, match="relu4_2"):
        extract_features(tiny_vgg, image, ["relu4_2", "relu9_9"])
    with pytest.raises(ValueError, match="no layers"):
        extract_features(tiny_vgg, image, [])
    with pytest.raises(ValueError, match="pooling"):
        extract_features(tiny_vgg, image, ["relu1_1"], pooling="min")
    with pytest.raises(ValueError, match="H×W×3"):
        extract_features(tiny_vgg, image[..., :2], ["relu1_1"])
    with pytest.raises(ValueError, match="H×W×3"):
        extract_features(tiny_vgg, image[..., 0], ["relu1_1"])


# ----------------------------------------------------------------------------- shapes

ALL_SHAPE = (32, 48)  # one compiled all-layer program serves the two tests below


def test_every_layer_name_and_shape_on_tiny_vgg(tiny_vgg):
    h, w = ALL_SHAPE
    feats = extract_features(tiny_vgg, make_image(h, w), LAYERS)
    assert list(feats) == list(LAYERS)
    for name, f in feats.items():
        block = int(name[-1]) if name.startswith("pool") else int(name.split("_")[0][-1])
        down = 2 ** (block if name.startswith("pool") else block - 1)
        assert f.shape == (h // down, w // down, TINY_WIDTHS[block - 1]), name
        assert f.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(f))), name


def test_relu_and_pool_follow_their_convolution(tiny_vgg):
    feats = {k: np.asarray(v) for k, v in
             extract_features(tiny_vgg, make_image(*ALL_SHAPE, seed=1), LAYERS).items()}
    for name in LAYERS:
        if name.startswith("relu"):
            conv = feats[name.replace("relu", "conv")]
            assert conv.min() < 0 < conv.max(), name  # pre-activation, both signs
            np.testing.assert_array_equal(feats[name], np.maximum(conv, 0), err_msg=name)
        elif name.startswith("pool"):
            before = feats[LAYERS[LAYERS.index(name) - 1]]
            h, w, c = before.shape[0] // 2, before.shape[1] // 2, before.shape[2]
            # 2×2 windows, stride 2; an odd last row/column is dropped (pool5 here: 2×3 -> 1×1)
            ref = before[: 2 * h, : 2 * w].reshape(h, 2, w, 2, c).max(axis=(1, 3))
            np.testing.assert_array_equal(feats[name], ref, err_msg=name)


def test_parameter_tree_has_vgg19_names_and_shapes(tiny_vgg):
    x = jnp.zeros((1, 32, 32, 3))
    init = vgg.VGG19(layers=("pool5",)).init  # shapes only: nothing is drawn or compiled
    real = jax.eval_shape(init, jax.random.PRNGKey(0), x)["params"]
    assert sorted(real) == sorted(W.CONV_NAMES)
    cin, total = 3, 0
    for name in W.CONV_NAMES:
        cout = (64, 128, 256, 512, 512)[int(name[5]) - 1]
        assert real[name]["kernel"].shape == (3, 3, cin, cout), name
        assert real[name]["bias"].shape == (cout,), name
        total += real[name]["kernel"].size + real[name]["bias"].size
        tiny_out = TINY_WIDTHS[int(name[5]) - 1]
        assert tiny_vgg.params[name]["kernel"].shape[-1] == tiny_out, name
        cin = cout
    assert total == W.PARAMETER_COUNT


def test_aliases_return_the_same_features_keyed_as_given(tiny_vgg):
    names = ["block4_conv2", "relu4_2", "relu_10", "conv_10", "pool_16", "block5_pool"]
    feats = extract_features(tiny_vgg, make_image(32, 32), names)
    assert list(feats) == names
    np.testing.assert_array_equal(feats["block4_conv2"], feats["relu4_2"])
    np.testing.assert_array_equal(feats["relu_10"], feats["relu4_2"])
    np.testing.assert_array_equal(feats["pool_16"], feats["block5_pool"])
    assert not np.array_equal(feats["conv_10"], feats["relu4_2"])
    by_string = extract_features(tiny_vgg, make_image(32, 32), "block4_conv2, conv_10")
    assert list(by_string) == ["block4_conv2", "conv_10"]
    np.testing.assert_array_equal(by_string["conv_10"], feats["conv_10"])


# ----------------------------------------------------------------------------- batching

def test_single_batched_and_vmapped_images_agree(tiny_vgg):
    layers = ("relu1_1", "relu2_2")
    images = np.stack([make_image(32, 32, seed=s) for s in range(3)])
    batched = extract_features(tiny_vgg, images, layers)
    vmapped = jax.vmap(lambda im: extract_features(tiny_vgg, im, layers))(images)
    for name in layers:
        assert batched[name].shape[0] == 3 and vmapped[name].shape == batched[name].shape
        close32(vmapped[name], batched[name], name)
        for i in range(3):
            single = extract_features(tiny_vgg, images[i], layers)[name]
            assert single.shape == batched[name].shape[1:]
            close32(single, batched[name][i], f"{name}[{i}]")
    assert not np.allclose(batched["relu2_2"][0], batched["relu2_2"][1])  # images differ


# ----------------------------------------------------------------------------- early stop

def _conv_count(weights, layers, image):
    text = jax.jit(lambda im: extract_features(weights, im, layers)).lower(image).as_text()
    return text.count("stablehlo.convolution")


@pytest.mark.parametrize("layers,convs", [(("relu1_1",), 1), (("conv1_2",), 2),
                                          (("pool1",), 2), (("relu1_1", "relu2_1"), 3),
                                          (("relu3_1",), 5), (("block5_conv4",), 16)])
def test_program_stops_at_the_deepest_requested_layer(tiny_vgg, layers, convs):
    assert _conv_count(tiny_vgg, layers, make_image(32, 32)) == convs


def test_shallow_layers_need_only_their_own_parameters(tiny_vgg):
    image = make_image(16, 16)
    full = extract_features(tiny_vgg, image, ["relu1_1", "pool1"])
    block1 = {k: v for k, v in tiny_vgg.params.items() if k.startswith("block1_")}
    cut = tiny_vgg._replace(params=block1)
    shallow = extract_features(cut, image, ["relu1_1", "pool1"])
    np.testing.assert_array_equal(shallow["relu1_1"], full["relu1_1"])
    np.testing.assert_array_equal(shallow["pool1"], full["pool1"])
    with pytest.raises(Exception, match="block2_conv1"):  # the removal is real
        extract_features(cut, image, ["relu2_1"])


# ----------------------------------------------------------------------------- pooling

def test_max_and_average_pooling(tiny_vgg):
    image = make_image(32, 32, seed=2)
    layers = ("relu1_2", "pool1", "relu2_1")
    mx = {k: np.asarray(v) for k, v in extract_features(tiny_vgg, image, layers).items()}
    av = {k: np.asarray(v) for k, v in
          extract_features(tiny_vgg, image, layers, pooling="avg").items()}
    np.testing.assert_array_equal(mx["relu1_2"], av["relu1_2"])  # before any pooling
    blocks = mx["relu1_2"].reshape(16, 2, 16, 2, -1).astype(np.float64)
    np.testing.assert_array_equal(mx["pool1"], blocks.max(axis=(1, 3)).astype(np.float32))
    # mean of 4 float32 numbers: at most a few ulp from the float64 mean.
    np.testing.assert_allclose(av["pool1"], blocks.mean(axis=(1, 3)), rtol=1e-6,
                               atol=1e-6 * np.abs(blocks).max())
    assert np.abs(mx["pool1"] - av["pool1"]).max() > 1e-2 * np.abs(mx["pool1"]).max()
    assert not np.allclose(mx["relu2_1"], av["relu2_1"])


# ----------------------------------------------------------------------------- preprocessing

def test_preprocess_matches_caffe_formula_and_round_trips(tiny_vgg):
    image = make_image(8, 8, seed=4)
    std = np.array([58.0, 57.0, 57.0], np.float32)  # tiny_vgg's (non-unit, to test it)
    ref = (image[..., ::-1].astype(np.float64) * 255.0 - CAFFE_MEAN) / std
    x = np.asarray(vgg.preprocess(tiny_vgg, image))
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-5)  # float32 of values up to ~2.5
    back = np.asarray(vgg.deprocess(tiny_vgg, x))
    np.testing.assert_allclose(back, image, rtol=0, atol=1e-6)  # ~8 float32 roundings of 255


def test_preprocess_rgb_imagenet_round_trips(tiny_vgg):
    rgb = W.weights_from_arrays(tiny_vgg.params, **W.TORCHVISION_PREPROCESSING)
    image = make_image(8, 8, seed=5)
    mean = np.array([0.485, 0.456, 0.406])
    sd = np.array([0.229, 0.224, 0.225])
    x = np.asarray(vgg.preprocess(rgb, image))
    np.testing.assert_allclose(x, (image - mean) / sd, rtol=0, atol=1e-6)
    np.testing.assert_allclose(vgg.deprocess(rgb, x), image, rtol=0, atol=1e-6)


def test_extract_features_applies_the_weights_preprocessing(tiny_vgg):
    image = make_image(32, 32, seed=6)
    layers = ("relu1_1", "relu3_1")
    net = jax.jit(lambda p, x: vgg.VGG19(layers=layers).apply({"params": p}, x))
    manual = net(tiny_vgg.params, ((image[..., ::-1] * 255.0 - CAFFE_MEAN)
                                   / np.array([58.0, 57.0, 57.0], np.float32))[None])
    got = extract_features(tiny_vgg, image, layers)
    unflipped = net(tiny_vgg.params, ((image * 255.0 - CAFFE_MEAN) / 57.0)[None])
    for name in layers:
        close32(got[name], manual[name][0], name)
        assert not np.allclose(unflipped[name][0], manual[name][0], rtol=1e-2), name


# ----------------------------------------------------------------------------- gradients

def _lax_conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_case(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 7, 5, 3)).astype(dtype)
    k = rng.normal(size=(3, 3, 3, 4)).astype(dtype)
    g = rng.normal(size=(2, 7, 5, 4)).astype(dtype)
    return x, k, g


def test_conv3x3_custom_vjp_matches_lax_float64():
    with jax.enable_x64(True):
        x, k, g = _conv_case(np.float64)
        f = conv3x3
        out, vjp = jax.vjp(f, x, k)
        ref_out, ref_vjp = jax.vjp(_lax_conv, x, k)
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
        for got, ref in zip(vjp(g), ref_vjp(g)):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        # jitted grad with respect to the input alone (the kernel gradient is then unused).
        gx = jax.jit(jax.grad(lambda x: jnp.sum(f(x, k) * g)))(x)
        np.testing.assert_allclose(gx, ref_vjp(g)[0], rtol=1e-12, atol=1e-12)
        # and a central difference: the function is linear in x, so exact to rounding.
        v = np.random.default_rng(1).normal(size=x.shape)
        h = 1e-3
        fd = (jnp.sum(f(x + h * v, k) * g) - jnp.sum(f(x - h * v, k) * g)) / (2 * h)
        np.testing.assert_allclose(fd, jnp.sum(gx * v), rtol=1e-9)


def test_conv3x3_custom_vjp_matches_lax_float32():
    x, k, g = _conv_case(np.float32, seed=3)
    _, vjp = jax.vjp(conv3x3, x, k)
    _, ref_vjp = jax.vjp(_lax_conv, x, k)
    for got, ref in zip(vjp(g), ref_vjp(g)):
        ref = np.asarray(ref)
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())


def test_feature_gradient_with_and_without_remat(tiny_vgg):
    image = jnp.asarray(make_image(16, 16, seed=7))

    def loss(im, remat):
        f = extract_features(tiny_vgg, im, ["relu2_1"], remat=remat)["relu2_1"]
        return jnp.sum(f ** 2)

    g0 = jax.grad(loss)(image, False)
    g1 = jax.grad(loss)(image, True)
    assert float(jnp.abs(g0).max()) > 0
    close32(g1, g0)


# ----------------------------------------------------------------------------- real weights

RELUS = tuple(n for n in LAYERS if n.startswith("relu"))


@pytest.mark.real_weights
def test_real_weights_give_finite_nontrivial_activations(real_vgg):
    assert real_vgg.params["block1_conv1"]["kernel"].shape == (3, 3, 3, 64)
    feats = extract_features(real_vgg, make_image(64, 64), RELUS)
    for name, f in feats.items():
        f = np.asarray(f)
        assert np.all(np.isfinite(f)), name
        assert f.min() >= 0, name
        assert np.any(f > 0), name
        assert f.std() > 0, name
    assert feats["relu5_4"].shape == (4, 4, 512)


@pytest.mark.real_weights
def test_real_weights_use_caffe_preprocessing(real_vgg):
    assert bool(real_vgg.bgr) and float(real_vgg.scale) == 255.0
    np.testing.assert_allclose(real_vgg.mean, CAFFE_MEAN)
    image = make_image(64, 64, seed=8)
    layers = ("relu1_1", "relu3_1", "relu5_1")
    got = extract_features(real_vgg, image, layers)
    reversed_ = extract_features(real_vgg, image[..., ::-1], layers)
    net = jax.jit(lambda p, x: vgg.VGG19(layers=layers).apply({"params": p}, x))
    manual = net(real_vgg.params, (image[..., ::-1] * 255.0 - CAFFE_MEAN)[None])
    for name in layers:
        close32(got[name], manual[name][0], name)
        diff = np.abs(np.asarray(got[name]) - np.asarray(reversed_[name])).max()
        assert diff > 1e-2 * np.abs(np.asarray(got[name])).max(), name  # BGR matters
    x = vgg.preprocess(real_vgg, image)
    np.testing.assert_allclose(vgg.deprocess(real_vgg, x), image, rtol=0, atol=1e-6)
