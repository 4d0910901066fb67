"""VGG19 in Flax and a pure, compiled feature extractor.

Layer names (all resolve to one canonical name, e.g. ``relu4_2``):

================  ===========  ===============  ==========================
canonical         before ReLU  Keras layer      PyTorch tutorial (seq.)
================  ===========  ===============  ==========================
``relu1_1``       ``conv1_1``  ``block1_conv1``  ``relu_1`` / ``conv_1``
``relu1_2``       ``conv1_2``  ``block1_conv2``  ``relu_2`` / ``conv_2``
``pool1``                      ``block1_pool``   ``pool_2``
``relu2_1``       ``conv2_1``  ``block2_conv1``  ``relu_3`` / ``conv_3``
...               ...          ...               ...
``relu5_4``       ``conv5_4``  ``block5_conv4``  ``relu_16`` / ``conv_16``
``pool5``                      ``block5_pool``   ``pool_16``
================  ===========  ===============  ==========================

Keras's ``blockB_convC`` layers include their ReLU, so they name the ``reluB_C`` output.
The PyTorch tutorial numbers convolutions sequentially (1-16) and names each pool after the
last convolution before it.

References:
  Simonyan & Zisserman (2014); Gatys et al. 2016 §2 (VGG19, average pooling for synthesis).
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nstjax.model.layers import (  # noqa: F401
    BLOCK_SIZES,
    CONV_NAMES,
    CONV_OF,
    LAYER_ALIASES,
    LAYER_INDEX,
    LAYERS,
    VGG_WIDTHS,
    VGGWeights,
    canonical_layer,
    canonical_layers,
    layer_depth,
    make_vgg_weights,
)
from nstjax.model.pooling import (  # noqa: F401
    POOLINGS,
    avg_pool2x2,
    l2_pool2x2,
    max_pool2x2,
)

_DN = ("NHWC", "HWIO", "NHWC")

# Checkpointing policies (what the backward pass recomputes instead of keeping):
# "none" keeps every activation; "conv" keeps only each convolution's input and recomputes
# the convolution and its ReLU; "block" keeps only each block's input (and the returned
# features) and recomputes the whole block.
REMAT_POLICIES = ("none", "conv", "block")
# Compute precision of the network: "float32" (exact float32 convolutions), "tf32"
# (float32 storage, TensorFloat-32 multiplies where the hardware has them: Ampere and later
# GPUs; the same as float32 on CPU) and "bf16" (bfloat16 activations and weights; features
# are returned in float32 so statistics and losses accumulate in float32).
PRECISIONS = ("float32", "tf32", "bf16")
_CONV_PRECISION = {"float32": "float32", "tf32": "tensorfloat32", "bf16": "bfloat16"}


def remat_policy(remat) -> str:
    """A checkpointing policy name (:data:`REMAT_POLICIES`); ``None`` or ``False`` is
    ``"none"`` and ``True`` is ``"conv"``."""
    if remat is None or remat is False:
        return "none"
    if remat is True:
        return "conv"
    if remat not in REMAT_POLICIES:
        raise ValueError(f"remat must be one of {', '.join(REMAT_POLICIES)}, not {remat!r}")
    return remat


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def _conv(x, kernel, precision="float32"):
    """The convolution; bfloat16 operands are summed in float32 (and returned as float32)."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DN,
                                        precision=jax.lax.Precision(precision),
                                        preferred_element_type=(
                                            jnp.float32 if x.dtype == jnp.bfloat16 else None))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3(x, kernel, precision="float32"):
    """3×3, stride-1, SAME convolution (NHWC, HWIO) with a layout-stable backward pass.

    The input gradient is the convolution of the output gradient with the flipped kernel.
    JAX's own transpose rule leaves XLA a kernel in ``01oi`` order; inside a
    ``while_loop`` XLA:CPU does not fold that into a fast layout and falls back to a slow
    generic convolution (measured 3× slower per evaluation).  Here the flipped kernel is
    materialised behind an ``optimization_barrier`` in plain HWIO order, so every
    convolution, forward and backward, takes the fast path, in loops and out.

    ``precision`` is a :class:`jax.lax.Precision` name (``"float32"``, ``"tensorfloat32"``,
    ``"bfloat16"``), used forward and backward.  The sums are float32 whatever the operands'
    type (bfloat16 operands give a float32 result; mixed precision as on tensor cores).
    """
    return _conv(x, kernel, precision)


def _conv3x3_fwd(x, kernel, precision):
    return _conv(x, kernel, precision), (x, kernel)


def _conv3x3_bwd(precision, res, g):
    x, kernel = res
    flipped = jax.lax.optimization_barrier(jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    out_dtype = jnp.float32 if x.dtype == jnp.bfloat16 else x.dtype
    dx = _conv(g.astype(x.dtype), flipped, precision).astype(x.dtype)
    dk = jax.vjp(lambda k: _conv(x, k, precision), kernel)[1](
        g.astype(out_dtype))[0]                         # removed by XLA when unused
    return dx, dk.astype(kernel.dtype)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
    """A VGG convolution: ``conv3x3(x, kernel) + bias`` with params ``kernel``, ``bias``."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv3x3(x, kernel) + bias


def _recomputed(fn, *, static: int):
    """``fn(p, x, *static_args)`` keeping only ``(p, x)`` for its backward pass, which runs
    ``fn`` again (gradient checkpointing).

    ``jax.checkpoint`` is not used: XLA:CPU drops its optimisation barriers and then merges
    the recomputation with the forward pass (common-subexpression elimination), keeping every
    activation alive after all (measured: no saving at all).  Here the recomputation reads
    ``x + 0·g₀`` (``g₀`` one entry of the incoming gradient), which no compiler pass can
    merge with the forward pass or schedule before the gradient arrives, on every backend.
    """

    def wrapped(p, x, *args):
        assert len(args) == static

        @jax.custom_vjp
        def run(p, x):
            return fn(p, x, *args)

        def run_fwd(p, x):
            return fn(p, x, *args), (p, x)

        def run_bwd(res, g):
            p, x = res
            first = jax.tree_util.tree_leaves(g)[0]
            x = x + (0 * jnp.ravel(first)[0]).astype(x.dtype)
            return jax.vjp(lambda p, x: fn(p, x, *args), p, x)[1](g)

        run.defvjp(run_fwd, run_bwd)
        return run(p, x)

    return wrapped


def _block_of(name: str) -> int:
    return int(name[4])


def vgg_forward(params: dict, x, *, layers: Sequence[str], pooling: str = "max",
                remat="none", precision: str = "float32") -> dict:
    """The VGG19 trunk as a pure function of its params, with checkpointing and precision.

    Args:
      params: ``{"block1_conv1": {"kernel": HWIO, "bias": O}, ...}``.
      x: preprocessed ``f32[B, H, W, 3]``.
      layers: canonical layer names to return; the pass stops at the deepest.
      pooling: ``"max"``, ``"avg"`` or ``"l2"``.
      remat: a policy of :data:`REMAT_POLICIES` (or a boolean, True meaning ``"conv"``).
      precision: one of :data:`PRECISIONS`.

    Returns:
      ``{name: f32[B, h, w, c]}`` (float32 whatever the compute precision).
    """
    policy = remat_policy(remat)
    dtype = jnp.bfloat16 if check_precision(precision) == "bf16" else jnp.float32
    conv_precision = _CONV_PRECISION[precision]
    wanted = set(layers)
    last = max(LAYER_INDEX[n] for n in wanted)
    names = LAYERS[: last + 1]

    def unit(p, x, conv_name, keep_conv):
        """A convolution and its ReLU: ``(relu output, conv output or None)``."""
        y = conv3x3(x, p["kernel"].astype(dtype), conv_precision) + p["bias"]   # f32 sums
        return nn.relu(y).astype(dtype), (y if keep_conv else None)

    if policy == "conv":
        unit = _recomputed(unit, static=2)

    def block(p, x, block_names):
        out = {}
        for name in block_names:
            if name.startswith("conv"):
                x, conv_out = unit(p[CONV_OF[name]], x, name, name in wanted)
                if conv_out is not None:
                    out[name] = conv_out
                continue
            if name.startswith("relu"):
                pass                       # applied with its convolution in unit()
            elif pooling == "avg":
                x = avg_pool2x2(x)
            elif pooling == "l2":
                x = l2_pool2x2(x)
            else:
                x = max_pool2x2(x)
            if name in wanted:
                out[name] = x.astype(jnp.float32)
        return x, out

    if policy == "block":
        block = _recomputed(block, static=1)
    x = x.astype(dtype)
    out = {}
    for b in range(1, len(BLOCK_SIZES) + 1):
        block_names = tuple(n for n in names if _block_of(n) == b)
        if not block_names:
            break
        p = {CONV_OF[n]: params[CONV_OF[n]] for n in block_names if n.startswith("conv")}
        x, found = block(p, x, block_names)
        out.update(found)
    return out


class VGG19(nn.Module):
    """VGG19 convolutional trunk on preprocessed NHWC input (Flax wrapper of
    :func:`vgg_forward`; ``init`` creates the params).

    Attributes:
      layers: canonical layer names to return; the pass stops at the deepest.
      pooling: ``"max"``, ``"avg"`` or ``"l2"`` (2x2, stride 2; :mod:`nstjax.model.pooling`).
      remat: a checkpointing policy (:data:`REMAT_POLICIES`; True means ``"conv"``).
      precision: compute precision (:data:`PRECISIONS`).
    """

    layers: Sequence[str]
    pooling: str = "max"
    remat: bool | str = False
    precision: str = "float32"

    @nn.compact
    def __call__(self, x):
        given = self.variables.get("params", {})  # widths follow the params (tiny test VGGs)
        if not given or self.is_initializing():
            last, y = max(LAYER_INDEX[n] for n in self.layers), x
            for name in LAYERS[: last + 1]:
                if name.startswith("conv"):
                    block = CONV_OF[name]
                    y = Conv3x3(VGG_WIDTHS[int(block[5]) - 1], name=block)(y)
                elif name.startswith("relu"):
                    y = nn.relu(y)
                else:
                    y = nn.max_pool(y, (2, 2), strides=(2, 2))
            given = self.variables["params"]
        return vgg_forward(given, x, layers=self.layers, pooling=self.pooling,
                           remat=self.remat, precision=self.precision)


def preprocess(vgg: VGGWeights, image):
    """RGB in [0, 1] (``...×3``) to the network's input (channel order, scale, mean, std)."""
    x = image * vgg.scale
    x = jnp.where(vgg.bgr, x[..., ::-1], x)
    return (x - vgg.mean) / vgg.std


def deprocess(vgg: VGGWeights, x):
    """Inverse of :func:`preprocess`: network input back to RGB in [0, 1] scale."""
    x = x * vgg.std + vgg.mean
    x = jnp.where(vgg.bgr, x[..., ::-1], x)
    return x / vgg.scale


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "remat", "precision"))
def _extract(vgg: VGGWeights, image, layers: tuple, pooling: str, remat: str,
             precision: str):
    single = image.ndim == 3
    x = preprocess(vgg, image[None] if single else image)
    feats = vgg_forward(vgg.params, x, layers=layers, pooling=pooling, remat=remat,
                        precision=precision)
    return {k: v[0] for k, v in feats.items()} if single else feats


def extract_features(vgg: VGGWeights, image, layers: Iterable[str] | str, *,
                     pooling: str = "max", remat="none", precision: str = "float32") -> dict:
    """VGG19 activations of an RGB image.

    Pure and jit-compiled once per image shape, layer set, pooling, checkpointing policy and
    precision; works under ``jax.jit``, ``jax.grad`` and ``jax.vmap``.

    Args:
      vgg: the network's parameters and their preprocessing (:func:`nstjax.load_vgg19`).
      image: RGB in [0, 1], ``f32[H, W, 3]`` or ``f32[B, H, W, 3]``.
      layers: layer names in any accepted form (see the module table).
      pooling: ``"max"``, ``"avg"`` or ``"l2"`` (:mod:`nstjax.model.pooling`).
      remat: checkpointing policy, ``"none"``, ``"conv"`` or ``"block"`` (what the backward
        pass recomputes to save memory; see :func:`vgg_forward`); True means ``"conv"``.
      precision: ``"float32"``, ``"tf32"`` or ``"bf16"`` (activations in bfloat16, the
        returned features in float32).

    Returns:
      ``{name: f32[(B,) h, w, c]}`` keyed by the names as given.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if isinstance(layers, str):
        layers = [n.strip() for n in layers.split(",") if n.strip()]
    layers = list(layers)
    canon = canonical_layers(layers)
    image = jnp.asarray(image)
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"image must be H×W×3 or B×H×W×3 RGB, got shape {image.shape}")
    feats = _extract(vgg, image, tuple(sorted(set(canon), key=LAYER_INDEX.get)), pooling,
                     remat_policy(remat), check_precision(precision))
    return {given: feats[c] for given, c in zip(layers, canon)}


def init_random_weights(key, *, widths=(4, 4, 8, 8, 8), scale=None) -> VGGWeights:
    """A tiny random VGG19 (same 16 convolutions, few channels) for fast tests.

    Args:
      key: PRNG key.
      widths: channels per block (the real network has 64, 128, 256, 512, 512).
      scale: kernel standard deviation; He initialisation if None.
    """
    shapes, cin = [], 3
    for name in CONV_NAMES:
        cout = widths[int(name[5]) - 1]
        shapes.append(((3, 3, cin, cout), (cout,)))
        cin = cout
    total = sum(9 * k[2] * k[3] + b[0] for k, b in shapes)
    # One draw for all layers: a single compiled sampler instead of one per shape.
    noise = np.asarray(jax.random.normal(key, (total,), jnp.float32))
    params, at = {}, 0
    for name, (kshape, bshape) in zip(CONV_NAMES, shapes):
        std = scale if scale is not None else (2.0 / (9 * kshape[2])) ** 0.5
        nk = int(np.prod(kshape))
        params[name] = {"kernel": jnp.asarray(std * noise[at:at + nk].reshape(kshape)),
                        "bias": jnp.asarray(0.1 * noise[at + nk:at + nk + bshape[0]])}
        at += nk + bshape[0]
    return make_vgg_weights(params, channel_order="BGR", scale=255.0, std=(58.0, 57.0, 57.0))
