#!/usr/bin/env python
"""Evaluations per member in a vmapped L-BFGS sweep: what lock step costs.

Under ``vmap`` the members of a sweep run one batched program: a line search that needs
more trials for one member runs them for all (its ``while_loop`` turns until every member
is done), so each member pays, per iteration, for the slowest member's search.  This script
runs each member alone, one iteration per compiled call, reading the optimiser's own count
of evaluations (``PLBFGSState.n_evals``) after each iteration: the trajectories are those
of the batched run (the same arithmetic), so

    useful evaluations of member i  = Σ_t e_i(t)
    evaluations the batch pays      = Σ_t max_i e_i(t)          (per member)
    waste                           = 1 − Σ_i Σ_t e_i(t) / (K · Σ_t max_i e_i(t))

where ``e_i(t)`` is member i's evaluations at iteration t (1 + its backtracks).

    python benchmarks/sweep_lockstep.py --size 192 --iters 100 --weights-list 10,30,100,300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

import nstjax
from nstjax.objective.terms import compute_targets
from nstjax.run import transfer

IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "images"


def evaluations_per_iteration(vgg, content, style, weights, solver, objective):
    """``i32[T]``: the evaluations each iteration of one solve took."""
    targets = compute_targets(vgg, content, [style], objective=objective)
    problem = transfer.Problem(vgg, targets, weights, jax.random.PRNGKey(0))
    state, problem = transfer.init_jit(content, problem, solver, objective=objective)
    counts, before = [], int(state.opt_state.n_evals)
    for t in range(1, solver.max_iter + 1):
        state = transfer.advance_jit(state, problem, solver, np.int32(t), objective=objective)
        if int(state.n_iter) < t:
            break
        now = int(state.opt_state.n_evals)
        counts.append(now - before)
        before = now
    return np.asarray(counts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", default=str(IMAGES / "tubingen.jpg"))
    p.add_argument("--style", default=str(IMAGES / "starry_night.jpg"))
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--weights-list", default="10,30,100,300", help="style weights, one per member")
    args = p.parse_args(argv)
    vgg = nstjax.load_vgg19(log=lambda m: print(m, file=sys.stderr))
    content = nstjax.load_image(args.content, size=args.size)
    style = nstjax.load_image(args.style, size=args.size)
    objective = nstjax.Objective()
    solver = nstjax.Solver(max_iter=args.iters)
    betas = [float(b) for b in args.weights_list.split(",")]
    per_member = []
    for beta in betas:
        w = nstjax.loss_weights(objective, style_weight=beta)
        e = evaluations_per_iteration(vgg, content, style, w, solver, objective)
        per_member.append(e)
        print(f"style weight {beta:g}: {len(e)} iterations, {e.sum()} evaluations "
              f"({(e > 1).sum()} iterations backtracked, most {e.max()})", flush=True)
    t = min(len(e) for e in per_member)
    e = np.stack([m[:t] for m in per_member])
    useful, paid = e.sum(), len(betas) * e.max(0).sum()
    print(f"over {t} iterations: useful {useful} evaluations, the batch pays {paid} "
          f"({paid / len(betas):.0f} per member): waste {1 - useful / paid:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
