"""nstjax: optimisation-based neural style transfer in JAX.

Pure core (features, losses, optimiser drivers) with a thin shell (``scripts/``).
"""

from nstjax.image import ImageError, load_image, save_image
from nstjax.losses import content_loss, gram_loss, gram_matrix, tv_loss
from nstjax.optimize import OPTIMIZERS, OptimizeResult, Status, minimize
from nstjax.style_losses import (STYLE_LOSSES, StyleLoss, get_style_loss, parse_style_spec,
                                 register_style_loss)
from nstjax.sweeps import SweepResult, sweep
from nstjax.transfer import (LossWeights, SolverSettings, StyleConfig, Targets, TransferResult, auto_scales,
                             compute_targets, gatys_loss, objective_terms, solve, stylize)
from nstjax.vgg import LAYERS, canonical_layer, extract_features, init_random_weights
from nstjax.weights import VGGWeights, WeightsError, convert, load_vgg19

__all__ = [
    "ImageError", "load_image", "save_image",
    "content_loss", "gram_loss", "gram_matrix", "tv_loss",
    "OPTIMIZERS", "OptimizeResult", "Status", "minimize",
    "STYLE_LOSSES", "StyleLoss", "get_style_loss", "parse_style_spec", "register_style_loss",
    "LossWeights", "SolverSettings", "StyleConfig", "Targets", "TransferResult", "auto_scales",
    "compute_targets", "gatys_loss", "objective_terms", "solve", "stylize",
    "SweepResult", "sweep",
    "LAYERS", "canonical_layer", "extract_features", "init_random_weights",
    "VGGWeights", "WeightsError", "convert", "load_vgg19",
]
