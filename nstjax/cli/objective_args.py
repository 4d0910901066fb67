"""The objective's flags: the argument group and the :class:`~nstjax.Objective` they build
(every command that solves shares them)."""

from __future__ import annotations

import argparse

from nstjax.model.pooling import POOLINGS
from nstjax.objective.config import TV_LOSSES, Objective
from nstjax.objective.pyramid import PARAMETRIZATIONS
from nstjax.run.resolve import objective_of
from nstjax.run.spec import OBJECTIVE_FIELDS, RunSpec


def add_objective_args(p: argparse.ArgumentParser) -> None:
    objective = Objective()
    g = p.add_argument_group("objective (changing these compiles a new program)")
    g.add_argument("--content-layers", nargs="+",
                   help=f"default {','.join(objective.content_layers)}")
    g.add_argument("--style-layers", nargs="+",
                   help=f"default {','.join(objective.style_layers)}")
    g.add_argument("--style-loss", help="style method(s) with fusion weights, e.g. gram or "
                   f"bn:0.5,mmd-poly:0.5 (default {','.join(objective.style_losses)})")
    g.add_argument("--content-loss", choices=("mse", "sum", "self-similarity"),
                   help="mse: mean squared feature error, per position like the style "
                   "losses, so a run looks the same at every size; sum: Gatys' ½Σ(F−P)² "
                   "(Gatys et al. 2016, eq. 1), which grows with the pixels; self-similarity: "
                   "STROTSS's layout loss (Kolkin et al. 2019) "
                   f"(default {objective.content_loss})")
    g.add_argument("--pooling", choices=POOLINGS,
                   help="VGG's 2×2 pooling: max (the network's own), avg (Gatys et al.'s "
                   "choice for synthesis) or l2 (smoother gradients) "
                   f"(default {objective.pooling})")
    g.add_argument("--auto-scale", action="store_true", default=None,
                   help="set each style method's scale from gradient norms at the start")
    g.add_argument("--remat", choices=("auto", "none", "conv", "block"),
                   help="gradient checkpointing: recompute activations in the backward pass "
                   "per convolution or per VGG block (less memory, slower); auto (default) "
                   "takes none, or block when the compiled program would not fit")
    g.add_argument("--precision", choices=("float32", "tf32", "bf16"),
                   help="compute precision: float32 (default), tf32 (TensorFloat-32 "
                   "multiplies on Ampere+ GPUs) or bf16 (bfloat16 activations, float32 "
                   "statistics and losses)")
    g.add_argument("--normalization", choices=("nstjax", "paper"),
                   help="per-layer factors: nstjax, or paper: those of the released code of "
                   "Li et al. 2017, Demystifying Neural Style Transfer (default nstjax)")
    g.add_argument("--resample", action="store_true", default=None,
                   help="new Gaussian MMD pairs at every evaluation (adam, gd only)")
    g.add_argument("--tv-loss", choices=TV_LOSSES,
                   help="mean: squared neighbour differences per value (a --tv-weight means "
                   "the same at every size); sum: their sum over [0, 1] pixels, as "
                   "jcjohnson/neural-style (default mean, sum with --content-loss sum)")
    g.add_argument("--parametrization", choices=PARAMETRIZATIONS,
                   help="what the optimiser updates: pixels, or laplacian: the coefficients "
                   "of a Laplacian pyramid of the image, as STROTSS and NNST (broad colour "
                   "moves, less single-pixel speckle; no pixel box, the result is clipped) "
                   f"(default {objective.parametrization}; laplacian on nstjax stylize's "
                   "default coarse-to-fine ladder)")
    g.add_argument("--pyramid-levels", type=int,
                   help=f"halvings of the laplacian pyramid (default {objective.pyramid_levels}"
                   ", as STROTSS; NNST uses 8; fewer where the image is smaller)")



def build_objective(args):
    """``(Objective, style mix)`` from the flags (checked by :mod:`nstjax.run.spec`)."""
    return objective_of(RunSpec.from_arguments(
        {k: getattr(args, k, None) for k in OBJECTIVE_FIELDS}))
