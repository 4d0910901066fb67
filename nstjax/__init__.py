"""nstjax: optimisation-based neural style transfer in JAX.

Pure core (features, losses, optimisers, the driver) with a thin shell (``nstjax.cli``).
Module map: ``config`` (Objective, LossWeights, Solver), ``vgg`` and ``weights`` (the
network), ``losses``, ``mmd``, ``statistics`` and ``style_losses`` (the representations),
``objective`` (targets and terms), ``optimize`` (optimisers and ``minimize``), ``hooks``
(host callbacks), ``transfer`` (the driver, ``stylize``), ``multiscale`` (coarse-to-fine),
``color`` (colour control), ``alpha`` (transparent content), ``sweeps``, ``image`` and
``image_writing`` (files in and out), ``pictures`` (grids and sheets), ``memory``,
``tiling`` and ``tile_layout`` (print sizes in tiles), ``sharding`` (one image over
several devices).
"""

from nstjax.objective.config import LossWeights, Objective, Solver, loss_weights
from nstjax.run.hooks import Callbacks
from nstjax.io.image import ImageError, load_image
from nstjax.io.image_writing import save_image
from nstjax.run.inversion import InversionResult, invert
from nstjax.losses.core import content_loss, gram_loss, gram_matrix, tv_loss
from nstjax.objective.terms import Targets, auto_scales, compute_targets, objective_terms, total_loss
from nstjax.solve.optimize import (OPTIMIZERS, OptimizeResult, Optimizer, Status, make_optimizer,
                             minimize, register_optimizer)
from nstjax.losses import (STYLE_LOSSES, StyleLoss, get_style_loss, parse_style_spec,
                                 register_style_loss)
from nstjax.run.sweeps import SweepResult, sweep
from nstjax.run.transfer import TransferResult, run_transfer, stylize
from nstjax.run.multiscale import MultiscaleResult, size_ladder, stylize_multiscale
from nstjax.large.sharding import stylize_sharded
from nstjax.large.tiling import TiledResult, stylize_tiled
from nstjax.model.vgg import LAYERS, VGG_WIDTHS, canonical_layer, extract_features, init_random_weights
from nstjax.io.weights import VGGWeights, WeightsError, convert, load_vgg19

__all__ = [
    "LossWeights", "Objective", "Solver", "loss_weights",
    "Callbacks",
    "ImageError", "load_image", "save_image",
    "InversionResult", "invert",
    "content_loss", "gram_loss", "gram_matrix", "tv_loss",
    "Targets", "auto_scales", "compute_targets", "objective_terms", "total_loss",
    "OPTIMIZERS", "OptimizeResult", "Optimizer", "Status", "make_optimizer", "minimize",
    "register_optimizer",
    "STYLE_LOSSES", "StyleLoss", "get_style_loss", "parse_style_spec", "register_style_loss",
    "SweepResult", "sweep",
    "TransferResult", "run_transfer", "stylize",
    "MultiscaleResult", "size_ladder", "stylize_multiscale",
    "stylize_sharded", "TiledResult", "stylize_tiled",
    "LAYERS", "VGG_WIDTHS", "canonical_layer", "extract_features", "init_random_weights",
    "VGGWeights", "WeightsError", "convert", "load_vgg19",
]
