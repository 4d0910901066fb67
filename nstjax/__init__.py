"""nstjax: optimisation-based neural style transfer in JAX.

Pure core with a thin shell (``nstjax.cli``).  The subpackages are the layers, each
importing only from those before it: ``model`` (VGG19), ``io`` (files), ``losses`` (the
representations, registered by name; ``nstjax.losses.<method>``), ``objective``
(Objective, LossWeights, Solver, targets and terms), ``solve`` (optimisers and
``minimize``), ``run`` (the drivers: ``stylize``, sweeps, inversion, coarse-to-fine,
colour), ``large`` (tiles, sharding), ``evaluate`` (scores no loss optimises).
"""

import importlib.metadata as _metadata

from nstjax import losses
from nstjax.evaluate import ScoreResult, score
from nstjax.io.image import ImageError, load_image
from nstjax.io.image_writing import save_image
from nstjax.io.weights import WeightsError, convert, load_vgg19
from nstjax.large.plans import Sharded, Tiles
from nstjax.large.sharding import stylize_sharded
from nstjax.large.tiling import stylize_tiled
from nstjax.losses import (
    StyleLoss,
    get_style_loss,
    parse_style_spec,
    register_style_loss,
    style_loss_names,
)
from nstjax.losses.core import content_loss, gram_loss, gram_matrix, tv_loss
from nstjax.model.layers import VGGWeights
from nstjax.model.vgg import (
    LAYERS,
    VGG_WIDTHS,
    canonical_layer,
    extract_features,
    init_random_weights,
)
from nstjax.objective.config import LossWeights, Objective, loss_weights
from nstjax.objective.terms import (
    Targets,
    auto_scales,
    compute_targets,
    objective_terms,
    total_loss,
)
from nstjax.run.hooks import Callbacks
from nstjax.run.inversion import InversionResult, invert
from nstjax.run.multiscale import size_ladder, stylize_multiscale
from nstjax.run.nnst import NNSTResult, nnst
from nstjax.run.plans import Histogram, Ladder, Luminance, Single, stylize
from nstjax.run.resolve import Run, stylize_run
from nstjax.run.result import Stage, TransferResult
from nstjax.run.sidecar import Sidecar, SidecarError
from nstjax.run.spec import RunSpec, SpecError
from nstjax.run.sweeps import SweepResult, sweep
from nstjax.run.transfer import run_transfer
from nstjax.run.transfer_memory import TransferMemory, plan_transfer
from nstjax.solve.minimize import OptimizeResult, Status, minimize
from nstjax.solve.optimize import (
    Optimizer,
    adam,
    gd,
    get_optimizer,
    lbfgs,
    lbfgsb,
    make_optimizer,
    optax_lbfgs,
    optimizer_names,
    plbfgs,
    register_optimizer,
)
from nstjax.solve.solver import Solver


def __getattr__(name):
    """``stylize_video`` and ``VideoResult`` on first use: their video decoder and optical
    flow libraries stay unloaded for everything else."""
    if name == "stylize_video":
        from nstjax.video.api import stylize_video
        return stylize_video
    if name == "VideoResult":
        from nstjax.video.driver import VideoResult
        return VideoResult
    raise AttributeError(f"module 'nstjax' has no attribute {name!r}")


try:
    __version__ = _metadata.version("nstjax")
except _metadata.PackageNotFoundError:      # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__", "losses",
    "LossWeights", "Objective", "Solver", "loss_weights",
    "Callbacks",
    "ImageError", "load_image", "save_image",
    "InversionResult", "invert",
    "content_loss", "gram_loss", "gram_matrix", "tv_loss",
    "Targets", "auto_scales", "compute_targets", "objective_terms", "total_loss",
    "OptimizeResult", "Optimizer", "Status", "make_optimizer", "minimize",
    "register_optimizer", "optimizer_names", "get_optimizer",
    "plbfgs", "lbfgsb", "lbfgs", "optax_lbfgs", "adam", "gd",
    "StyleLoss", "get_style_loss", "parse_style_spec", "register_style_loss",
    "style_loss_names",
    "SweepResult", "sweep",
    "TransferResult", "Stage", "run_transfer", "stylize",
    "size_ladder", "stylize_multiscale", "stylize_sharded", "stylize_tiled",
    "NNSTResult", "nnst",
    "RunSpec", "SpecError", "Run", "stylize_run", "Sidecar", "SidecarError",
    "Single", "Ladder", "Tiles", "Sharded", "Luminance", "Histogram",
    "TransferMemory", "plan_transfer",
    "LAYERS", "VGG_WIDTHS", "canonical_layer", "extract_features", "init_random_weights",
    "VGGWeights", "WeightsError", "convert", "load_vgg19",
    "ScoreResult", "score",
    "VideoResult", "stylize_video",
]
