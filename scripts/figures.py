#!/usr/bin/env python
"""The papers' figures, one command each: ``python scripts/figures.py NAME [options]``.

Names (``--list`` prints them):

* ``li2017-fig1``: style reconstructions, methods × cumulative layers (the explorer,
  li2017's procedure: paper normalisation, grey init, resampled pairs, 0.5% image stop);
* ``li2017-fig2``: balance factor γ swept per method (one vmapped sweep per method);
* ``li2017-fig3``: content/style pairs × the four methods at one γ;
* ``li2017-fig4``: fusions BN+poly and linear+Gaussian over five mixes (sweeps over
  ``style_mix``);
* ``stylerep``: stylerep Figs. 1.3 (Gram per layer), 1.4-1.6 (moments N = 1…4 per layer)
  and 1.7 (eq. 1.6 per layer), from one batched run of stylerep's procedure;
* ``bordag2020-q12``: the same transfer with the first 3 and the first 5 style layers.

The names are the papers' keys (docs/methods.md, "The papers"); the first names,
``seed003-fig1`` … ``seed003-fig4``, ``seed002`` and ``seed004-q12``, are still accepted.

Each writes ``NAME.png`` (``stylerep``: three PNGs) and ``NAME.json`` (strict JSON: settings,
per-panel iterations, status and losses, and ``departures``: every way the run differs
from the paper) into ``--out-dir``.  Images come from ``--content``/``--style``, else
from ``--images`` (default ``../shared/images``), else the generated demo images (with a
note).  Sizes and budgets default small (96-128 px, a few hundred iterations) for a look
on a CPU; the paper's budgets are far larger (stylerep: 10⁵ iterations and more).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import nstjax  # noqa: E402
from nstjax.io import (
    jsonio,  # noqa: E402
    pictures,
)
from nstjax.io.demo import demo_content, demo_style  # noqa: E402
from nstjax.io.image import load_image  # noqa: E402
from nstjax.io.image_writing import save_image, write_text_atomic  # noqa: E402
from nstjax.objective.config import Objective, loss_weights  # noqa: E402
from nstjax.run import inversion as inv  # noqa: E402
from nstjax.run.sweeps import sweep  # noqa: E402
from nstjax.solve.solver import Solver

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
FIGURES: dict[str, Callable] = {}
# The figures go by their papers' keys (docs/methods.md, "The papers"); the internal labels
# they had first are still accepted.
FIGURE_ALIASES = {**{f"seed003-fig{i}": f"li2017-fig{i}" for i in range(1, 5)},
                  "seed002": "stylerep", "seed004-q12": "bordag2020-q12"}
PAPER_METHODS = ("mmd-linear", "mmd-poly", "mmd-gauss", "bn")
FIG3_METHODS = ("gram",) + PAPER_METHODS          # Gram beside poly (≡ poly with c = 0)


def figure(name: str):
    """Register a figure function ``(args, vgg) -> (panels, labels, cols, record)``."""
    def register(fn):
        if name in FIGURES:
            raise ValueError(f"figure {name!r} registered twice")
        FIGURES[name] = fn
        return fn
    return register


def _image(args, which: str, default: str, size: int):
    """``(name, image)``: ``--content``/``--style`` if given, else ``default`` in
    ``--images``, else the generated demo image (with a note on stderr)."""
    given = getattr(args, which)
    if given:
        return str(given), load_image(given, size=size)
    path = Path(args.images) / default
    if path.is_file():
        return str(path), load_image(path, size=size)
    print(f"note: no --{which} given and {path} not found: using the generated demo "
          f"{which} image (pass --{which} FILE or --images FOLDER)", file=sys.stderr)
    if which == "content":
        return "demo content", demo_content(max(16, round(size * 3 / 4)), size)
    return "demo style", demo_style(size, size)


def _li2017_departures(args, method: str, size: int, *, fig3: bool = False) -> list[str]:
    """How a li2017 stylisation run here differs from the paper (and its code)."""
    out = [f"long edge {size} px, a size for a look on a CPU (the paper does not state "
           "its size)",
           "the released code's per-layer factors and w_k (paper λ), converted to our "
           "content loss ½Σ(F − P)²"]
    if "mmd-gauss" in method:
        out.append(f"Adam (lr {args.lr:g}, ≤ {args.iters} iterations, 0.5% image-change "
                   "stop on [0, 1] pixels) instead of the code's SGD (momentum 0.9, weight "
                   "decay, step schedule, gradient clipping, change on 0-255 units)")
        out.append("Gaussian kernel exp(−d²/mean d²), the released code's; the text's "
                   "exp(−d²/2σ²) with σ² = mean d² is a guess we do not take in paper mode")
    if any(m in method for m in ("mmd-linear", "mmd-poly", "bn", "gram")):
        out.append(f"projected L-BFGS for {args.iters} iterations instead of the code's "
                   "SGD, without the 0.5% stop (from the grey start its first step changes "
                   "the image by less and would end the run)")
    if args.init == "grey":
        out.append("grey start, as the released code (the text says random)")
    elif args.init != "noise":
        out.append(f"start from {args.init} (the text says random)")
    if fig3:
        out.append("a Gram column beside the paper's four methods (poly with c = 0 equals "
                   "Gram at equal sizes); Gram's λ is ours, it has no paper factor")
    return out


def _paper_solver(method: str, args) -> tuple[Solver, bool]:
    """li2017's set-up per method: the Gaussian needs resampled pairs, hence Adam, with
    the code's stop at 0.5% image change; the others run L-BFGS (the code's SGD is not in
    our registry) for ``--iters``, without the image stop: from the near-constant grey
    start L-BFGS's bounded first step changes the [0, 1] image by < 0.5% and would stop
    it after one iteration (measured; the code measures the change on the mean-subtracted
    image, where the same step is large)."""
    if "mmd-gauss" in method:
        return Solver("adam", args.iters, lr=args.lr, tol_x=args.tol_x), True
    return Solver("plbfgs", args.iters), False


def _cells(res) -> list[dict]:
    return [{"probe": res.probes[i].label, "layers": list(res.layer_sets[j]),
             "iterations": int(res.n_iter[i, j]), "budget": int(res.budgets[i, j]),
             "status": nstjax.Status(int(res.status[i, j])).name.lower(),
             "initial_loss": float(res.initial_loss[i, j]), "final_loss": float(res.loss[i, j])}
            for i in range(len(res.probes)) for j in range(len(res.layer_sets))]


def _short(layers) -> str:
    s = [l.replace("relu", "r") for l in layers]
    return s[0] if len(s) == 1 else f"{s[0]}-{s[-1]}"


# ---------------------------------------------------------------------------- li2017


@figure("li2017-fig1")
def li2017_fig1(args, vgg):
    """Demystifying NST (Li et al. 2017) Fig. 1: each method's style alone, growing layer sets."""
    path, style = _image(args, "style", "starry_night.jpg", args.size or 128)
    proc = inv.li2017_procedure(max_iter=args.iters, lr=args.lr, tol_x=args.tol_x)
    res = inv.invert(vgg, style, proc.probes, proc.layer_sets, key=jax.random.PRNGKey(args.seed),
                     **proc.kwargs())
    r, c = res.images.shape[:2]
    panels = [res.images[i, j] for i in range(r) for j in range(c)] + [style]
    labels = [f"{p.label} {_short(s)}" for p in res.probes for s in res.layer_sets] + ["style"]
    record = {"style": path, "procedure": "li2017", "solver": dataclasses.asdict(proc.solver),
              "init": proc.init, "normalization": proc.normalization,
              "resample": proc.resample, "pooling": proc.pooling, "cells": _cells(res),
              "departures": ["Adam instead of the code's SGD (momentum 0.9, weight decay, "
                             "step schedule, gradient clipping)",
                             "relative image change on [0, 1] pixels, not on mean-subtracted "
                             "0-255 units",
                             f"long edge {args.size or 128} px, a size for a look on a CPU",
                             "Gaussian kernel exp(−d²/mean d²), the released code's (the "
                             "text's exp(−d²/2σ²) differs)"]}
    return panels, labels, c, record


def _stylize_method(args, vgg, content, style, method: str, values: dict, *, mix=None):
    """One vmapped sweep of li2017's set-up for ``method`` (a name or a fusion spec)."""
    methods, spec_mix = nstjax.parse_style_spec(method)
    solver, resample = _paper_solver(method, args)
    objective = Objective(style_losses=methods, normalization="paper", resample=resample,
                          pooling="avg", content_loss="sum")
    base = loss_weights(objective, style_weight=args.gamma, style_mix=mix or spec_mix)
    res = sweep(vgg, content, style, values, key=jax.random.PRNGKey(args.seed),
                objective=objective, weights=base, solver=solver, init=args.init)
    members = [{"setting": {k: (list(map(float, v)) if isinstance(v, (tuple, list)) else
                                float(v)) for k, v in s.items()},
                "iterations": int(res.n_iter[i]),
                "status": nstjax.Status(int(res.status[i])).name.lower(),
                "final_loss": float(res.loss[i]),
                "final_terms": {k: float(v[i]) for k, v in res.terms.items()}}
               for i, s in enumerate(res.settings)]
    return res, {"method": method, "solver": dataclasses.asdict(solver),
                 "resample": resample, "members": members}


@figure("li2017-fig2")
def li2017_fig2(args, vgg):
    """Demystifying NST (Li et al. 2017) Fig. 2: the style weight γ swept per method."""
    size = args.size or 96
    cpath, content = _image(args, "content", "brad_pitt.jpg", size)
    spath, style = _image(args, "style", "starry_night.jpg", size)
    gammas = args.gammas
    panels, labels, runs = [], [], []
    for method in PAPER_METHODS:
        res, run = _stylize_method(args, vgg, content, style, method,
                                   {"style_weight": gammas})
        panels += list(res.images)
        labels += [f"{method} g={g:g}" for g in gammas]
        runs.append(run)
    panels += [content, style] + [np.ones_like(content)] * (len(gammas) - 2)
    labels += ["content", "style"] + [""] * (len(gammas) - 2)
    departures = sorted({d for m in PAPER_METHODS for d in _li2017_departures(args, m, size)})
    return panels, labels, len(gammas), {"content": cpath, "style": spath, "gammas": gammas,
                                         "init": args.init, "normalization": "paper",
                                         "runs": runs, "departures": departures}


@figure("li2017-fig3")
def li2017_fig3(args, vgg):
    """Demystifying NST (Li et al. 2017) Fig. 3: image pairs × Gram and the four methods.

    Gram has no paper factor: its λ is the registry's."""
    size = args.size or 96
    pairs = [("tubingen.jpg", "starry_night.jpg"), ("brad_pitt.jpg", "picasso_selfport1907.jpg"),
             ("tubingen.jpg", "shipwreck.jpg")][: args.pairs]
    if args.content or args.style:
        pairs = pairs[:1]
    panels, labels, runs = [], [], []
    for cdefault, sdefault in pairs:
        cname, content = _image(args, "content", cdefault, size)
        sname, style = _image(args, "style", sdefault, size)
        panels += [content, style]
        labels += [Path(cname).stem[:12], Path(sname).stem[:12]]
        for method in FIG3_METHODS:
            res, run = _stylize_method(args, vgg, content, style, method,
                                       {"style_weight": [args.gamma]})
            panels.append(res.images[0])
            labels.append(f"{method} g={args.gamma:g}")
            runs.append({"content": cname, "style": sname, **run})
    departures = sorted({d for m in FIG3_METHODS
                         for d in _li2017_departures(args, m, size, fig3=True)})
    return panels, labels, 2 + len(FIG3_METHODS), {"gamma": args.gamma, "init": args.init,
                                                    "normalization": "paper", "runs": runs,
                                                    "departures": departures}


@figure("li2017-fig4")
def li2017_fig4(args, vgg):
    """Demystifying NST (Li et al. 2017) Fig. 4: BN+poly and linear+Gaussian fusions, 5 mixes."""
    size = args.size or 96
    cpath, content = _image(args, "content", "brad_pitt.jpg", size)
    spath, style = _image(args, "style", "starry_night.jpg", size)
    mixes = [(0.9, 0.1), (0.7, 0.3), (0.5, 0.5), (0.3, 0.7), (0.1, 0.9)]
    panels, labels, runs = [], [], []
    for fusion in ("bn,mmd-poly", "mmd-linear,mmd-gauss"):
        res, run = _stylize_method(args, vgg, content, style, fusion, {"style_mix": mixes})
        a, b = fusion.split(",")
        panels += list(res.images)
        labels += [f"{a}:{m[0]:g} {b}:{m[1]:g}" for m in mixes]
        runs.append(run)
    panels += [content, style, *[np.ones_like(content)] * 3]
    labels += ["content", "style", "", "", ""]
    return panels, labels, len(mixes), {"content": cpath, "style": spath, "gamma": args.gamma,
                                        "mixes": mixes, "init": args.init, "runs": runs,
                                        "departures": sorted(
                                            {d for m in ("bn,mmd-poly", "mmd-linear,mmd-gauss")
                                             for d in _li2017_departures(args, m, size)})
                                        + ["the mix multiplies every method's λ (from the "
                                           "paper λ, so a mix weighs comparable gradients); "
                                           "the released code scales only the first "
                                           "method's w, a bug"]}


# ---------------------------------------------------------------------------- stylerep


@figure("stylerep")
def stylerep(args, vgg):
    """Style-representation inversion (stylerep) Figs. 1.3-1.7: Gram, moments, channel MMD."""
    path, style = _image(args, "style", "starry_night.jpg", args.size or 128)
    proc = inv.stylerep_procedure(budget_scale=args.budget_scale)
    solver = dataclasses.replace(proc.solver, lr=args.lr_stylerep) \
        if args.lr_stylerep is not None else proc.solver
    kwargs = {**proc.kwargs(), "solver": solver}
    res = inv.invert(vgg, style, proc.probes, proc.layer_sets, key=jax.random.PRNGKey(args.seed),
                     **kwargs)
    r, c = res.images.shape[:2]
    labels = [[f"{p.label} {_short(s)}" for s in res.layer_sets] for p in res.probes]
    parts = {"fig1.3": [0], "fig1.4-1.6": [2, 3, 4, 5], "fig1.7": [1]}
    extra = {name: ([res.images[i, j] for i in rows for j in range(c)] + [style],
                    [labels[i][j] for i in rows for j in range(c)] + ["style"], c)
             for name, rows in parts.items()}
    record = {"style": path, "procedure": "stylerep", "budget_scale": args.budget_scale,
              "solver": dataclasses.asdict(solver), "cells": _cells(res),
              "departures": ([f"Adam lr {solver.lr:g} instead of 1e-3"]
                             if solver.lr != 1e-3 else [])
              + [f"budgets × {args.budget_scale:g} (Table 1.1 plus 240 extensions)",
                 f"long edge {args.size or 128} px (the paper does not state its size)",
                 "noise from JAX's PRNG key, not PyTorch's seed 0",
                 "saved pictures clipped to [0, 1] (the iterate is not, as in the paper)",
                 "M_i for i ≥ 2 are central moments, a guess (the paper defines M_i by "
                 "reference to a section it does not contain)",
                 "ψ = min{1, 1/|M_1|} (a guess; eq. 1.5 as printed has no absolute value, "
                 "the moments loss's literal_psi = 1 gives it)",
                 "eq. 1.6's h: a Gaussian kernel with a per-channel bandwidth, the mean "
                 "squared pair distance (a guess: the paper never defines them)"]}
    panels = [res.images[i, j] for i in range(r) for j in range(c)] + [style]
    flat = [l for row in labels for l in row] + ["style"]
    return panels, flat, c, {**record, "parts": extra}


# ---------------------------------------------------------------------------- bordag2020


@figure("bordag2020-q12")
def bordag2020_q12(args, vgg):
    """NST quiz (Bordag et al.) Q12: the first 3 versus the first 5 style layers."""
    size = args.size or 128
    cpath, content = _image(args, "content", "tubingen.jpg", size)
    spath, style = _image(args, "style", "shipwreck.jpg", size)
    objective = Objective()
    base = loss_weights(objective, style_weight=args.gamma)
    res = sweep(vgg, content, style,
                {"style_layer_weights": [(1, 1, 1, 0, 0), (1, 1, 1, 1, 1)]},
                key=jax.random.PRNGKey(args.seed), objective=objective, weights=base,
                solver=Solver("plbfgs", args.iters), init="content")
    panels = [content, style, res.images[0], res.images[1]]
    labels = ["content", "style", "3 layers", "5 layers"]
    return panels, labels, 4, {"content": cpath, "style": spath, "gamma": args.gamma,
                               "iterations": res.n_iter.tolist(),
                               "final_loss": res.loss.tolist(),
                               "departures": [
                                   "the quiz's sea turtle and Great Wave are not available: "
                                   f"{Path(cpath).name} and {Path(spath).name} instead",
                                   f"long edge {size} px, {args.iters} iterations of "
                                   "projected L-BFGS from the content image (the quiz states "
                                   "neither)",
                                   "our default objective: relu4_2 content, relu1_1-relu5_1 "
                                   f"style layers, style weight {args.gamma:g}"]}


# ------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help="figure name (--list prints them)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.add_argument("--out-dir", type=Path, default=Path("figures"),
                   help="folder for NAME.png and NAME.json (default figures)")
    p.add_argument("--images", default=str(IMAGES),
                   help=f"folder of the classic test images (default {IMAGES})")
    p.add_argument("--content", type=Path, help="content image (default: from --images, "
                   "else the generated demo content)")
    p.add_argument("--style", type=Path, help="style image (default: from --images, "
                   "else the generated demo style)")
    p.add_argument("--size", type=int, help="long edge in pixels (default 96 or 128, per "
                   "figure)")
    p.add_argument("--iters", type=int, default=300, help="iterations per picture "
                   "(default 300)")
    p.add_argument("--lr", type=float, default=0.02,
                   help="Adam step of the li2017 figures (default 0.02)")
    p.add_argument("--tol-x", type=float, default=0.005,
                   help="stop when the image changes by less than this fraction "
                   "(default 0.005, the paper's 0.5%%)")
    p.add_argument("--gamma", type=float, default=5.0,
                   help="style weight γ (default 5, the released code's)")
    p.add_argument("--gammas", type=float, nargs="+", default=[0.1, 1.0, 5.0, 20.0, 100.0],
                   help="li2017-fig2's style weights (default 0.1 1 5 20 100)")
    p.add_argument("--init", default="grey",
                   help="start image: grey, noise, content or style (default grey, the "
                   "released code's)")
    p.add_argument("--pairs", type=int, default=2,
                   help="li2017-fig3: content/style pairs, 1 to 3 (default 2; 1 when "
                   "--content or --style is given)")
    p.add_argument("--budget-scale", type=float, default=1e-3,
                   help="stylerep: multiply the paper's iteration budgets by this "
                   "(default 0.001)")
    p.add_argument("--lr-stylerep", type=float,
                   help="stylerep: Adam step (default the paper's 0.001)")
    p.add_argument("--lr-seed002", type=float, dest="lr_stylerep", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)                    # the old name, an alias
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--weights", help="vgg19.h5 (default weights/vgg19.h5)")
    args = p.parse_args(argv)
    if args.list or not args.name:
        width = max(map(len, FIGURES))
        print("\n".join(f"{name:<{width}}  {fn.__doc__.splitlines()[0]}"
                        for name, fn in FIGURES.items()))
        return 0
    args.name = FIGURE_ALIASES.get(args.name, args.name)
    if args.name not in FIGURES:
        print(f"error: unknown figure {args.name!r}; choose from {', '.join(FIGURES)}",
              file=sys.stderr)
        return 2
    try:
        vgg = nstjax.load_vgg19(args.weights)
        t0 = time.perf_counter()
        panels, labels, cols, record = FIGURES[args.name](args, vgg)
        seconds = time.perf_counter() - t0
    except (ValueError, nstjax.ImageError, nstjax.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cell = max(160, max(int(np.shape(x)[1]) for x in panels))
    out = args.out_dir / f"{args.name}.png"
    save_image(out, pictures.labelled_grid(panels, labels, cols=cols, cell=cell))
    written = [str(out)]
    for part, (pp, ll, cc) in record.pop("parts", {}).items():
        path = args.out_dir / f"{args.name}-{part}.png"
        save_image(path, pictures.labelled_grid(pp, ll, cols=cc, cell=cell))
        written.append(str(path))
    record = {"figure": args.name, "images": written, "seconds": round(seconds, 2),
              "size": args.size, "seed": args.seed, **record}
    write_text_atomic(args.out_dir / f"{args.name}.json", jsonio.dumps(record, indent=1))
    print(f"wrote {', '.join(written)} and {args.out_dir / (args.name + '.json')} "
          f"({seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
