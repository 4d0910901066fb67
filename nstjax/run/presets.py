"""The field's recipes by name: ``--preset classic | crowsonkb | strotss | nnst``.

A :class:`Preset` is a named run description in the flags' own names (``settings``: the
destination of each flag and its value), so the command line, ``--config`` and the sidecar
read it alike: ``nstjax stylize --preset NAME`` takes the settings as its defaults and any
flag given beside it overrides one (except those the preset ``refuses``, with the reason).
In Python the same run is ``nstjax.RunSpec(preset=NAME).resolve()`` (the library's
objects, see :mod:`nstjax.run.resolve`), run by :func:`nstjax.stylize_run`.

Each preset was read from the tool's own source, named with its commit in ``source``; what
this project's pieces do differently is listed in ``departures``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

# jcjohnson/neural-style's TVLoss adds the gradient of 1e-3 · ½ Σ Δx² in its Caffe units
# (256 × [0, 1] pixels): 1e-3 · ½ · 256² times the "sum" TV of [0, 1] pixels.
CLASSIC_TV = 1e-3 * 0.5 * 256.0 ** 2
# crowsonkb's features are torchvision's VGG19 on ImageNet-normalised input, ``(x − μ)/σ``
# with σ ≈ 0.226, this project's Caffe VGG19's on ``255 x − μ``: the features (and the
# content and W2 terms) are about (255 · 0.226)² larger here, its TV (on [0, 1] pixels) the
# same, so its TV weight 2 becomes 2 · (255 · 0.226)² / 255² on the per-value TV in 8-bit
# levels.
CROWSONKB_TV = 2.0 * 0.226 ** 2
CROWSONKB_LAYERS = tuple(w / 341.0 for w in (256.0, 64.0, 16.0, 4.0, 1.0))


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named recipe.

    Attributes:
      name: the ``--preset`` value.
      summary: one line for ``--help``.
      source: repository, file and commit the settings were read from.
      settings: ``{flag destination: value}`` (``style_loss``, ``iters``, ``min_size``, ...).
      departures: where the recipe here is not the tool's, one sentence each.
      refuses: ``{flag destination: reason}`` the recipe cannot be combined with.
      method: ``"objective"`` (a loss minimised by :func:`nstjax.stylize` or its ladder) or
        ``"nnst"`` (:func:`nstjax.nnst`, its own driver).
    """

    name: str
    summary: str
    source: str
    settings: Mapping[str, Any]
    departures: tuple[str, ...] = ()
    refuses: Mapping[str, str] = dataclasses.field(default_factory=dict)
    method: str = "objective"


PRESETS: dict[str, Preset] = {}


def _register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


CLASSIC = _register(Preset(
    name="classic",
    summary="jcjohnson/neural-style's defaults: Gram/(C·H·W) at five layers ×100, relu4_2 "
    "×5, TV 1e-3, the mean colour, L-BFGS (history 100) for 500 iterations at full size",
    source="github.com/jcjohnson/neural-style neural_style.lua, commit "
    "07c4b8299f8fbdafec0c514fc820ff1d7ff62e46 (as benchmarks/reference/neural_style.py)",
    settings={"style_loss": "gram-chw", "style_scales": "1", "content_weight": 5.0,
              "style_weight": 100.0, "tv_loss": "sum", "tv_weight": CLASSIC_TV,
              "init": "grey", "optimizer": "plbfgs", "history": 100, "iters": 500,
              "pooling": "max"},
    departures=(
        "500 iterations, the reference runner's, where the tool's -num_iterations is 1000.",
        "L-BFGS keeps every iterate in [0, 1] and backtracks when a unit step does not "
        "decrease the loss; the tool's runs unconstrained without a line search and clips "
        "at the end.",
        "Pixels are × 255 into the network (the tool's preprocess multiplies by 256), "
        "pooling floors odd sides (the tool's ceils), and the TV sums over the whole grid "
        "(the tool's crops the last row and column).",
        "The start is ImageNet's mean pixel with ±0.1/255 uniform noise (the tool's: "
        "randn × 0.001 in its units)."),
))

CROWSONKB = _register(Preset(
    name="crowsonkb",
    summary="crowsonkb/style-transfer-pytorch's defaults: W2 between Gaussians at five "
    "layers 256:64:16:4:1, content 0.015, Adam 0.02 from the photo, 128 px up √2 apart, "
    "1000 then 500 iterations, the averaged iterate",
    source="github.com/crowsonkb/style-transfer-pytorch style_transfer/style_transfer.py, "
    "commit e7e2c71 (StyleTransfer.stylize's defaults)",
    settings={"style_loss": "gaussian-w2", "style_scales": "1", "style_weight": 1.0,
              "style_layer_weights": ",".join(f"{w:.6g}" for w in CROWSONKB_LAYERS),
              "content_weight": 0.015, "tv_loss": "mean", "tv_weight": CROWSONKB_TV,
              "optimizer": "adam", "lr": 0.02, "average": 0.99, "init": "content",
              "min_size": 128, "scale_iters": (1000, 500), "carry_moments": True,
              "pooling": "max"},
    departures=(
        "This project's Caffe VGG19 in place of torchvision's (other weights and input "
        "scaling): the TV weight converted by the input scale (CROWSONKB_TV), the "
        "other weights as they are.",
        "Zero padding in the first convolution (crowsonkb's: replicate), and the TV over "
        "the four-neighbour differences (crowsonkb's: a nine-point stencil).",
        "Adam's second-moment decay 0.999, optax's (crowsonkb's: 0.99), and no 1e-4·I "
        "added to the covariances.",
        "The output size is the command's --size (crowsonkb's default end scale is 512)."),
    refuses={"optimizer": "warm-starts Adam's moments at every size (crowsonkb's "
             "scale_adam): it runs with --optimizer adam only"},
))

STROTSS = _register(Preset(
    name="strotss",
    summary="STROTSS (Kolkin et al. 2019): relaxed EMD + moments + palette, self-similarity "
    "content, the Laplacian pyramid, RMSprop, 64 px doubling to the size, content halved "
    "per scale",
    source="github.com/nkolkin13/STROTSS styleTransfer.py and st_helper.py, commit 9a1543a",
    settings={"style_loss": "relaxed-emd", "style_scales": "1", "style_weight": 1.0,
              "content_loss": "self-similarity", "content_weight": 16.0, "tv_weight": 0.0,
              "parametrization": "laplacian", "pyramid_levels": 5, "optimizer": "rmsprop",
              "lr": 2e-3, "init": "content", "min_size": 64, "scale_factor": 2.0,
              "scale_iters": (250,), "add_detail": True, "content_decay": 0.5,
              "hyper": ("relaxed-emd.palette=0.0625",), "pooling": "max"},
    departures=(
        "VGG19 (this project's weights) in place of STROTSS's VGG16, at relu1_1 … relu5_1 "
        "(STROTSS: hypercolumns of many VGG16 layers, randomly sampled per step).",
        "The content weight 16 (STROTSS's default 1.0 × 16) is the last scale's; each "
        "coarser scale's is twice the next (STROTSS: the first scale's is 16 and it halves).",
        "One learning rate, 2e-3, at every scale (STROTSS: 1e-3 at the last), and the "
        "palette term at 1/16 at every scale (STROTSS: 1/max(content weight, 1) of each).",
        "The first scale starts from the photo (STROTSS: the style's mean colour plus the "
        "photo's finest Laplacian band)."),
    refuses={"tile": "optimises a Laplacian pyramid, whose coarse levels move every "
             "pixel of a tile's fixed margin"},
))


_NNST_OWN = ("is its own method (nearest style hypercolumns fitted by Adam on an 8-level "
             "Laplacian pyramid, then an OkLab colour match)")
NNST = _register(Preset(
    name="nnst",
    summary="Neural Neighbor Style Transfer (Kolkin et al. 2022): content hypercolumns "
    "replaced by their nearest style neighbours, fitted coarse to fine on the pyramid, "
    "200 Adam steps at 2e-3 per scale, the OkLab colour match",
    source="github.com/nkolkin13/NeuralNeighborStyleTransfer styleTransfer.py and "
    "utils/stylize.py, commit 290976a (nstjax.run.nnst)",
    settings={"iters": 200, "lr": 2e-3, "content_weight": 0.25},
    departures=(
        "Caffe VGG19 (this project's weights) in place of torchvision's VGG16, at the same "
        "layers by name.",
        "--content-weight is the authors' content_weight = 1 − alpha, in [0, 1] (0.25); "
        "--iters is the steps of each scale and of the last pass.",
        "The neighbour search centres each set by its whole mean (the authors': by each "
        "block of their chunked search).",
        "Layers of at most 64 positions per side use every position in the last pass (the "
        "authors' loop reuses the previous layer's samples there)."),
    refuses={dest: _NNST_OWN for dest in (
        "style_loss", "content_loss", "optimizer", "min_size", "tile", "preserve_color",
        "transfer_color_only", "init", "style_weight", "tv_weight", "style_layers",
        "content_layers", "parametrization", "average", "history", "scale_iters",
        "style_layer_weights", "style_mask", "content_mask", "web", "precision", "remat",
        "tv_loss", "pooling", "hyper", "style_blend", "normalization", "style_scales")},
    method="nnst",
))

def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown one is a ``ValueError`` naming the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
