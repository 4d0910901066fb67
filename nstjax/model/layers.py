"""What VGG19 is, apart from any file: its convolutions, widths, layer names and parameters.

The one place the network's shape is written; :mod:`nstjax.model.vgg` builds the network
from it and :mod:`nstjax.io.weights` reads files into :class:`VGGWeights`.

Layer names (all resolve to one canonical name, e.g. ``relu4_2``): canonical
``reluB_C``/``convB_C``/``poolB``; Keras ``blockB_convC`` (its layers include their ReLU, so
it names ``reluB_C``) and ``blockB_pool``; the PyTorch tutorial's sequential
``conv_N``/``relu_N`` (N = 1…16) and ``pool_N`` (named after the last convolution before it).

References:
  Simonyan & Zisserman (2014), configuration E.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import jax.numpy as jnp

CONV_NAMES = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
    "block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4",
)
PARAMETER_COUNT = 20_024_384
# Channels of the convolutions in each block: the one place the VGG19 widths are written.
VGG_WIDTHS = (64, 128, 256, 512, 512)
BLOCK_SIZES = (2, 2, 4, 4, 4)
CAFFE_MEAN = (103.939, 116.779, 123.68)


class VGGWeights(NamedTuple):
    """Everything the network needs: parameters and the preprocessing they were trained with.

    A pytree, so it passes through ``jit``/``vmap`` as an ordinary argument.

    Attributes:
      params: Flax params, ``{"block1_conv1": {"kernel": HWIO, "bias": O}, ...}``.
      mean: ``f32[3]`` subtracted after scaling, in the network's input channel order.
      std: ``f32[3]`` divided after subtracting the mean.
      scale: ``f32[]`` multiplies the [0, 1] image (255 for Caffe weights).
      bgr: ``bool[]``; True when the network takes BGR input.
    """

    params: dict
    mean: jnp.ndarray
    std: jnp.ndarray
    scale: jnp.ndarray
    bgr: jnp.ndarray


def make_vgg_weights(params: dict, *, channel_order="BGR", scale=255.0,
                        mean=CAFFE_MEAN, std=(1.0, 1.0, 1.0)) -> VGGWeights:
    """Wrap Flax params and a preprocessing description into :class:`VGGWeights`."""
    if channel_order not in ("BGR", "RGB"):
        raise ValueError(f"unknown channel order {channel_order!r}")
    return VGGWeights(params=params, mean=jnp.asarray(mean, jnp.float32),
                      std=jnp.asarray(std, jnp.float32), scale=jnp.asarray(scale, jnp.float32),
                      bgr=jnp.asarray(channel_order == "BGR"))


def _build_layer_table():
    order, aliases, conv_of = [], {}, {}
    seq = 0
    for block, n in enumerate(BLOCK_SIZES, start=1):
        for i in range(1, n + 1):
            seq += 1
            conv, relu = f"conv{block}_{i}", f"relu{block}_{i}"
            order += [conv, relu]
            conv_of[conv] = conv_of[relu] = f"block{block}_conv{i}"
            aliases.update({conv: conv, relu: relu, f"block{block}_conv{i}": relu,
                            f"conv_{seq}": conv, f"relu_{seq}": relu})
        pool = f"pool{block}"
        order.append(pool)
        aliases.update({pool: pool, f"block{block}_pool": pool, f"pool_{seq}": pool})
    return tuple(order), aliases, conv_of


LAYERS, LAYER_ALIASES, CONV_OF = _build_layer_table()
LAYER_INDEX = {name: i for i, name in enumerate(LAYERS)}


def canonical_layer(name: str) -> str:
    """Map any accepted layer name to its canonical form (``block4_conv2`` -> ``relu4_2``)."""
    try:
        return LAYER_ALIASES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown VGG19 layer {name!r}; valid names: {', '.join(LAYERS)} "
                         "(also Keras blockB_convC/blockB_pool and tutorial conv_N/relu_N/pool_N)"
                         ) from None


def canonical_layers(names: Iterable[str] | str) -> tuple[str, ...]:
    """Canonicalise a list (or comma-separated string) of layer names, keeping order."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = tuple(canonical_layer(n) for n in names)
    if not out:
        raise ValueError("no layers given")
    return out


def layer_stride(name: str) -> int:
    """How many input pixels one position of the layer spans along each side: 2 to the
    number of pooling layers at or before it (``relu1_1``: 1, ``pool1``: 2, ``relu5_1``:
    16, ``pool5``: 32).  A side of ``n`` pixels gives ``n // layer_stride`` positions."""
    name = canonical_layer(name)
    return 2 ** sum(1 for n in LAYERS[: LAYER_INDEX[name] + 1] if n.startswith("pool"))


def layer_depth(name: str) -> int:
    """Position of a canonical layer in the forward pass (0-based)."""
    return LAYER_INDEX[canonical_layer(name)]
