"""``nstjax invert``: what a statistic captures, by inversion from noise (a methods × layers grid).

Every probe (``--stats``: a style method, a fusion ``bn:0.5,mmd-poly:0.5``, ``moments@N``,
``channel-mmd@sum`` or ``content``) is matched alone at every layer set (``--layers``, one
at a time, or the first k with ``--cumulative``), all cells in one compiled, vmapped
program (:func:`nstjax.run.inversion.invert`)::
    nstjax invert --image style.jpg --size 128 --stats gram bn mmd-linear \\
        --layers relu1_1,relu2_1,relu3_1 --iters 200 --output inv.png
    nstjax invert --image style.jpg --size 96 --procedure li2017 --iters 300 --output f1.png
    nstjax invert --image style.jpg --size 64 --procedure stylerep --budget-scale 1e-3 ...

writes the labelled grid (rows: probes, columns: layer sets; the image itself last) and
``<output>.json``: per cell its iterations, budget, status, initial and final loss.
``--procedure`` sets a paper's whole set-up (flags given beside it override its parts); the
papers go by their keys (docs/methods.md), the old names ``seed002`` and ``seed003`` still
accepted.
The same ``--seed`` gives the same grid.  Bad input: one line, exit code 2.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

import nstjax
from nstjax.cli import common, counts
from nstjax.cli.common import UsageError
from nstjax.cli.session import session_of
from nstjax.io import demo
from nstjax.io.image import ImageError, load_image
from nstjax.io.image_writing import output_unit, save_image
from nstjax.io.pictures import labelled_grid
from nstjax.model.pooling import POOLINGS
from nstjax.model.vgg import canonical_layers
from nstjax.objective.config import Objective
from nstjax.run import inversion as inv
from nstjax.run.start import check_solver
from nstjax.solve.solver import Solver

DEFAULT_SIZE = 128
# --procedure takes the papers' keys; the internal labels it took first are aliases.
PROCEDURE_ALIASES = {"seed002": "stylerep", "seed003": "li2017"}


def add_arguments(p) -> None:
    i = p.add_argument_group("inputs")
    i.add_argument("--image", help="the image whose statistics are inverted (a style image)")
    i.add_argument("--demo", action="store_true", help="use the generated demo style image")
    i.add_argument("--size", type=int, help=f"long edge in pixels (default {DEFAULT_SIZE})")
    i.add_argument("--weights", help="VGG19 weights, vgg19.h5 (default as nstjax stylize)")
    g = p.add_argument_group("grid")
    g.add_argument("--stats", nargs="+", help="probes, one per row: a style method, a fusion "
                   "like bn:0.5,mmd-poly:0.5, moments@N, channel-mmd@sum or content "
                   "(default gram)")
    g.add_argument("--layers", nargs="+", help="layers, one column each (default "
                   "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    g.add_argument("--cumulative", action="store_true",
                   help="column k matches the first k layers together (as Fig. 1 of Li et "
                   "al. 2017, Demystifying Neural Style Transfer)")
    g.add_argument("--procedure", choices=tuple(inv.PROCEDURES),
                   type=lambda s: PROCEDURE_ALIASES.get(s, s),
                   help="a paper's set-up: stylerep, the style-representation inversion "
                   "study (Adam 1e-3 on the raw loss, no clipping, stop at 1e-5, its "
                   "iteration table, relu1_1-relu2_2, Gram, moments N = 1…4, channel MMD "
                   "summed), or li2017, Fig. 1 of Li et al. 2017, Demystifying Neural Style "
                   "Transfer (four methods × cumulative layers, the released code's factors, "
                   "grey start, resampled pairs, stop at 0.5%% image change)")
    g.add_argument("--budget-scale", type=float,
                   help="stylerep: multiply its iteration budgets by this (default 1)")
    g.add_argument("--chunk", type=counts.count, help="cells per compiled call (default all)")
    o = p.add_argument_group("objective")
    o.add_argument("--pooling", choices=POOLINGS, help="default max (li2017: avg)")
    o.add_argument("--normalization", choices=("nstjax", "paper"),
                   help="per-layer factors (default nstjax; li2017: paper)")
    o.add_argument("--resample", action="store_true", default=None,
                   help="new Gaussian MMD pairs at every evaluation (adam, gd only)")
    out = p.add_argument_group("outputs")
    out.add_argument("--output", help="the grid image; the JSON is <output>.json")
    common.add_progress_args(out)
    common.add_solver_args(p, init_help="uniform (uniform noise in [0, 1]), noise (the mean "
                           "colour with faint Gaussian noise), grey (ImageNet's mean pixel with "
                           "a little noise) or content (default uniform; grey with --procedure "
                           "li2017)")


def _setup(args):
    """``(probes, layer_sets, invert keyword arguments)`` from the procedure and the flags."""
    given = {f: v for f, v in (("optimizer", args.optimizer), ("max_iter", args.iters),
                               ("history_size", args.history), ("lr", args.lr),
                               ("rtol", args.tol), ("tol_x", args.tol_x),
                               ("threshold", args.threshold)) if v is not None}
    if args.budget_scale is not None and args.procedure != "stylerep":
        raise UsageError("--budget-scale belongs to --procedure stylerep")
    if args.budget_scale is not None and not (math.isfinite(args.budget_scale)
                                              and args.budget_scale > 0):
        raise UsageError(f"--budget-scale must be a number > 0, not {args.budget_scale:g}")
    scale = 1.0 if args.budget_scale is None else args.budget_scale
    if args.procedure == "stylerep":
        proc = inv.stylerep_procedure(budget_scale=scale)
    elif args.procedure == "li2017":
        proc = inv.li2017_procedure()
    else:
        proc = inv.Procedure((inv.parse_probe("gram"),),
                             tuple((l,) for l in inv.LI2017_LAYERS), Solver(), "uniform",
                             "nstjax", False, None)
    probes = tuple(inv.parse_probe(s) for s in _probe_words(args.stats)) if args.stats \
        else proc.probes
    if args.layers or args.cumulative:
        base = list(canonical_layers(common.words(args.layers))) if args.layers else \
            list(dict.fromkeys(l for s in proc.layer_sets for l in s))   # refused here, early
        layer_sets = tuple(inv.cumulative_layer_sets(base)) if args.cumulative \
            else tuple((l,) for l in base)
    else:
        layer_sets = proc.layer_sets
    budgets = proc.budgets
    if budgets is not None and (args.stats or args.layers or args.cumulative):
        budgets = inv.stylerep_procedure(budget_scale=scale, probes=probes,
                                          layers=[s[-1] for s in layer_sets]).budgets
    solver = dataclasses.replace(proc.solver, **given)
    if budgets is not None and args.iters is not None:
        budgets = np.minimum(budgets, args.iters)
    kwargs = dict(solver=solver, init=args.init or proc.init,
                  normalization=args.normalization or proc.normalization,
                  resample=proc.resample if args.resample is None else args.resample,
                  pooling=args.pooling or proc.pooling, budgets=budgets, chunk=args.chunk)
    return probes, layer_sets, kwargs


def _probe_words(values) -> list[str]:
    """``--stats gram "bn:0.5,mmd-poly:0.5"``: spaces separate probes (commas are fusions)."""
    return [w for v in values for w in str(v).split() if w]


def short_layers(layers) -> str:
    """``r3_1`` or ``r1_1-r3_1`` (grid captions are narrow)."""
    s = [layer.replace("relu", "r") for layer in layers]
    return s[0] if len(s) == 1 else f"{s[0]}-{s[-1]}"


def _check(args):
    """The flags' own checks, before any work: ``(size, output)``."""
    if args.demo == bool(args.image):
        raise UsageError("give --image (or --demo)")
    if args.output is None:
        raise UsageError("give --output (the grid image)")
    size = DEFAULT_SIZE if args.size is None else args.size
    if size < common.MIN_SIZE:
        raise UsageError(f"--size {size} is below the {common.MIN_SIZE}-pixel minimum")
    if args.chunk is not None and args.chunk < 1:
        raise UsageError("--chunk must be >= 1")
    if args.init not in (None, "noise", "uniform", "grey", "content"):
        raise UsageError("--init for an inversion is uniform, noise, grey or content")
    return size, Path(args.output)


def run(args) -> int:
    """The body of ``nstjax invert``; returns the exit code."""
    size, output = _check(args)
    probes, layer_sets, kwargs = _setup(args)
    check_solver(Objective(resample=kwargs["resample"]), kwargs["solver"].optimizer)
    sidecar = output.with_name(output.name + ".json")
    inputs = [Path(args.image)] if args.image else []
    common.refuse_overwriting_inputs([output, sidecar], inputs)
    common.check_output(output, inputs)
    common.enable_compilation_cache()



    session = session_of(args, "invert", protect=inputs)
    try:
        image = demo.demo_style(size, size) if args.demo else load_image(args.image, size=size)
    except ImageError as e:
        raise UsageError(str(e)) from None
    vgg = common.load_vgg(args.weights)
    session.loaded()
    r, c = len(probes), len(layer_sets)
    budgets = kwargs["budgets"]
    total = int(kwargs["solver"].max_iter if budgets is None else np.max(budgets))
    print(f"invert: {r} probes × {c} layer sets = {r * c} cells at "
          f"{image.shape[1]}×{image.shape[0]}, up to {total} iterations", file=sys.stderr)
    session.start(total, "invert", "")
    res = session.solve(lambda: inv.invert(
        vgg, image, probes, layer_sets, key=common.prng_key(args.seed),
        callbacks=session.callbacks(), **kwargs))
    report = session.record(
        "invert_including_compile", image="demo" if args.demo else str(args.image),
        image_size=[int(image.shape[1]), int(image.shape[0])], procedure=args.procedure,
        **common.config_record(res.objective, kwargs["solver"]), init=kwargs["init"],
        grid=str(output), rows=[p.label for p in probes],
        columns=[list(s) for s in layer_sets], cells=_cell_records(res, probes, layer_sets))
    with output_unit():               # the grid and its sidecar: all or none
        _write_grid(output, res, probes, layer_sets, image, inputs)
        common.write_json(sidecar, report)
    return session.finish(f"{output} and {sidecar}", res.status, what="some cells")


def _write_grid(output, res, probes, layer_sets, image, inputs) -> None:
    """The probes × layer sets grid, the image itself last."""
    r, c = len(probes), len(layer_sets)
    panels = [res.images[i, j] for i in range(r) for j in range(c)] + [np.asarray(image)]
    labels = [f"{p.label} {short_layers(s)}" for p in probes for s in layer_sets] + ["image"]
    cell = max(160, int(image.shape[1]))               # captions need ~160 px
    save_image(output, labelled_grid(panels, labels, cols=c, cell=cell), protect=inputs)


def _cell_records(res, probes, layer_sets) -> list[dict]:
    statuses = np.vectorize(lambda s: nstjax.Status(int(s)).name.lower())(res.status)
    return [{
        "row": i, "col": j, "probe": probes[i].label, "layers": list(layer_sets[j]),
        "iterations": int(res.n_iter[i, j]), "budget": int(res.budgets[i, j]),
        "status": str(statuses[i, j]),
        "initial_loss": float(res.initial_loss[i, j]),
        "final_loss": float(res.loss[i, j]),
    } for i in range(len(probes)) for j in range(len(layer_sets))]
