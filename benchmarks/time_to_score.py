#!/usr/bin/env python
"""Time to a good picture: the score (not the objective) against seconds, per recipe.

Each recipe stylises the same content and style at ``--size`` for ``--seconds`` of solving
(compilation excluded: a :class:`~nstjax.cli.compile_watch.CompileWatch` measures it and it
is taken out of every time) and keeps a snapshot every ``--every`` iterations.  Every
snapshot is then scored by :func:`nstjax.score` (SW: the sliced-Wasserstein style distance
relative to the content's, 1 = the photo; relu4_2: the content error), so recipes that
minimise different objectives, or the same one differently, are judged alike.

Recipes (``--recipes``):

* ``plbfgs``: the default solve (projected L-BFGS, content start);
* ``plbfgs-ladder``: coarse-to-fine from size/2 (√2 apart), L-BFGS at each size;
* ``adam``: Adam, lr 0.02; ``adam-ema``: the same, the output the moving average (0.99);
* ``adam-ladder-moments``: coarse-to-fine with Adam, its moments carried across sizes;
* ``plbfgs-grey``: the default solve from li2017's grey start;
* ``torch``: PyTorch's L-BFGS (history 100, lr 1, one evaluation per step) on the same
  objective and weights (``benchmarks/reference/torch_objective.py``), when torch is installed.

Prints, per recipe, the seconds to reach each SW target of ``--targets`` (the first
snapshot at or below it), and writes ``time_to_score.json`` and ``time_to_score.png`` (SW
against seconds, one line per recipe) into ``--out``.

    python benchmarks/time_to_score.py --size 256 --seconds 60 --out out/tts
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

import nstjax
from nstjax.cli.compile_watch import CompileWatch
from nstjax.io import jsonio
from nstjax.io.image_writing import write_text_atomic
from nstjax.run.multiscale import stylize_multiscale

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from torch_objective import reference_spec, torch_objective  # noqa: E402

IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "images"
MAX_ITER = 100_000
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (0, 0, 0)]


class Clock:
    """Solve seconds so far (wall time less the compilation a watch has seen), snapshots."""

    def __init__(self, watch: CompileWatch, seconds: float, every: int):
        self.watch, self.limit, self.every = watch, seconds, every
        self.t0 = time.perf_counter()
        self.snaps: list[tuple[float, int, np.ndarray]] = []

    def now(self) -> float:
        return time.perf_counter() - self.t0 - self.watch.seconds

    def snapshot(self, i, x):
        self.snaps.append((self.now(), int(i), np.asarray(x)))

    def callbacks(self):
        return nstjax.Callbacks(snapshot=self.snapshot, snapshot_every=self.every,
                                should_stop=lambda: self.now() > self.limit)


def recipes(size: int):
    adam = nstjax.Solver(optimizer="adam", max_iter=MAX_ITER, lr=0.02)
    lbfgs = nstjax.Solver(max_iter=MAX_ITER)
    rung = MAX_ITER // 10

    def single(solver, init="content"):
        return lambda vgg, c, s, cb: nstjax.stylize(vgg, c, s, key=jax.random.PRNGKey(0),
                                                    solver=solver, init=init, callbacks=cb)

    def ladder(solver, iters, carry=False):
        return lambda vgg, c, s, cb: stylize_multiscale(
            vgg, c, s, key=jax.random.PRNGKey(0), min_size=size // 2, iters=iters,
            solver=solver, carry_moments=carry, callbacks=cb)

    return {
        "plbfgs": single(lbfgs),
        "plbfgs-ladder": ladder(lbfgs, [60, 60, rung]),
        "adam": single(adam),
        "adam-ema": single(dataclasses.replace(adam, average=0.99)),
        "adam-ladder-moments": ladder(adam, [150, 150, rung], carry=True),
        "plbfgs-grey": single(lbfgs, "grey"),
    }


def run_torch(vgg, content, style, seconds: float, every: int):
    import torch
    objective = nstjax.Objective()
    spec = reference_spec(objective, nstjax.loss_weights(objective))
    loss = torch_objective(vgg, content, style, spec)
    x = torch.from_numpy(np.array(content)).requires_grad_(True)
    with torch.no_grad():
        f0 = abs(float(loss(x)))
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=100)

    def closure():
        opt.zero_grad()
        v = loss(x) / f0
        v.backward()
        return v

    snaps, t0, i = [], time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        opt.step(closure)
        i += 1
        if i % every == 0:
            snaps.append((time.perf_counter() - t0, i, x.detach().clamp(0, 1).numpy().copy()))
    return snaps


def plot(curves: dict, path: Path, title: str):
    w, h, m = 720, 440, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    t_max = max(max(t for t, _ in c) for c in curves.values() if c) or 1.0
    lo = min(min(s for _, s in c) for c in curves.values() if c)
    y_lo, y_hi = max(0.0, np.floor(lo * 10) / 10), 1.0

    def at(t, s):
        s = min(max(s, y_lo), y_hi)          # a start above the photo's own distance: clipped
        return (m + (w - 2 * m) * t / t_max,
                h - m - (h - 2 * m) * (s - y_lo) / max(y_hi - y_lo, 1e-9))

    d.rectangle([m, m, w - m, h - m], outline="black")
    for k in range(5):
        s = y_lo + (y_hi - y_lo) * k / 4
        d.text((8, at(0, s)[1] - 6), f"{s:.2f}", fill="black")
        t = t_max * k / 4
        d.text((at(t, y_lo)[0] - 10, h - m + 8), f"{t:.0f} s", fill="black")
    d.text((m, 20), title, fill="black")
    for n, (name, c) in enumerate(curves.items()):
        colour = COLOURS[n % len(COLOURS)]
        if len(c) > 1:
            d.line([at(t, s) for t, s in c], fill=colour, width=2)
        d.text((w - m + 4 - 170, m + 8 + 14 * n), name, fill=colour)
    img.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", default=str(IMAGES / "tubingen.jpg"))
    p.add_argument("--style", default=str(IMAGES / "starry_night.jpg"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--every", type=int, default=10, help="iterations between snapshots")
    p.add_argument("--recipes", nargs="+", help="default: all (and torch if installed)")
    p.add_argument("--targets", default="0.45,0.40,0.37", help="SW levels to time")
    p.add_argument("--out", type=Path, default=Path("out/time_to_score"))
    args = p.parse_args(argv)
    vgg = nstjax.load_vgg19()
    content = nstjax.load_image(args.content, size=args.size)
    style = nstjax.load_image(args.style, size=args.size)
    table = recipes(args.size)
    names = args.recipes or [*table, "torch"]
    args.out.mkdir(parents=True, exist_ok=True)
    targets = [float(t) for t in args.targets.split(",")]
    curves, record = {}, {}
    for name in names:
        if name == "torch":
            try:
                snaps = run_torch(vgg, np.asarray(content), np.asarray(style), args.seconds,
                                  args.every)
            except ImportError:
                print("torch: not installed, skipped")
                continue
            compile_s = 0.0
        else:
            with CompileWatch() as watch:
                clock = Clock(watch, args.seconds, args.every)
                table[name](vgg, jnp.asarray(content), jnp.asarray(style), clock.callbacks())
            snaps, compile_s = clock.snaps, watch.seconds
        scores = nstjax.score(vgg, content, style, [x for _, _, x in snaps])
        curve = [(t, sc.style["sliced_wasserstein"]) for (t, _, _), sc in zip(snaps, scores)]
        curves[name] = curve
        reach = {}
        for target in targets:
            hit = next(((t, i) for (t, i, _), (_, s) in zip(snaps, curve) if s <= target), None)
            reach[f"{target:g}"] = None if hit is None else {"seconds": hit[0], "iters": hit[1]}
        final = scores[-1] if scores else None
        record[name] = {"compile_s": compile_s, "reach": reach,
                        "snapshots": [{"seconds": t, "iters": i, "sw": s,
                                       "content_error": sc.content_error, "ssim": sc.ssim}
                                      for (t, i, _), (_, s), sc in zip(snaps, curve, scores)]}
        when = ", ".join(f"SW≤{k}: " + ("—" if v is None else f"{v['seconds']:.0f} s "
                                          f"({v['iters']} it)") for k, v in reach.items())
        print(f"{name:20s} compile {compile_s:5.1f} s; {when}; last SW "
              f"{curve[-1][1]:.3f} relu4_2 {final.content_error:.2f} at {curve[-1][0]:.0f} s"
              if curve else f"{name}: no snapshot", flush=True)
    plot(curves, args.out / "time_to_score.png",
         f"SW (1 = photo) against solve seconds, {args.size} px")
    write_text_atomic(args.out / "time_to_score.json",
                      jsonio.dumps({"size": args.size, "seconds": args.seconds,
                                    "recipes": record}, indent=1))
    print(f"wrote {args.out / 'time_to_score.png'} and time_to_score.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
