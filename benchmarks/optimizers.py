#!/usr/bin/env python
"""Benchmark (issue 9): nstjax's optimisers against PyTorch's L-BFGS, same weights and objective.

In one run, per image size (long edge; default 256 and 512):

* **per evaluation**: value and gradient of the objective with respect to the image, nstjax
  (``jit``) and PyTorch interleaved after a warm-up, medians and their ratio; the two are
  first checked to agree (value and gradient, ``--tol`` relative);
* **objective against wall time** for every optimiser (``--optimizers``) run by
  :func:`nstjax.minimize` from the content image, and for ``torch.optim.LBFGS`` (history
  ``--torch-history`` 100, ``lr=1``, no line search, one evaluation per step, on the
  objective divided by its starting value as nstjax's optimisers see it), ``--iters`` steps
  each; the value after 50/100/200 iterations and at equal wall time (PyTorch's time for
  ``--target-iters`` steps);
* **time to target**: PyTorch's image after ``--target-iters`` (100) steps, clipped to [0, 1]
  and quantised to 8 bits as a saved file is, scored by the objective, is the target; for each
  optimiser, the first iteration whose 8-bit image scores as well, and the wall time to it
  (solve only, and with nstjax's compile time added);
* **start-up** (``--startup``): whole-process wall time of a tiny job (64 px, 1 iteration),
  first and second run: ``scripts/stylize.py --demo`` with a fresh compilation cache, and a
  PyTorch script doing the same.

Writes a table to stdout, ``benchmark.json`` and ``benchmark.png`` (objective against wall
time, one panel per size, drawn with Pillow) into ``--out``. The machine's load average is
printed with every phase: compare ratios from one run, not seconds across runs.

Usage:
  python benchmarks/optimizers.py                                  # 256 and 512 px, 200 iters
  python benchmarks/optimizers.py --sizes 256 --iters 100 --optimizers plbfgs,lbfgsb
  python benchmarks/optimizers.py --no-torch                        # nstjax only
PyTorch is optional: ``pip install torch`` (CPU) to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "reference"))     # torch_objective.py

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import nstjax  # noqa: E402
from nstjax.solve import minimize as minimize_mod
from nstjax.solve import optimize  # noqa: E402
from torch_objective import reference_spec, torch_objective  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def log(msg=""):
    print(msg, flush=True)


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


# ----------------------------------------------------------------------- the nstjax objective

def nstjax_objective(vgg, content, style):
    """nstjax's default objective on one style image: the one use of the transfer API.

    Returns:
      ``(fun, spec)``: ``fun(x) -> f32[]`` (pure, jittable) and the numbers the PyTorch
      side needs to compute the same objective.
    """
    objective = nstjax.Objective()
    weights = nstjax.loss_weights(objective)
    targets = nstjax.compute_targets(vgg, content, [style], objective=objective)
    key = jax.random.PRNGKey(0)

    def fun(x):
        return nstjax.total_loss(x, vgg, targets, weights, key, objective=objective)

    spec = reference_spec(objective, weights)
    return fun, spec


# ----------------------------------------------------------------------- the PyTorch objective

# ----------------------------------------------------------------------- per evaluation

def per_evaluation(fun, tloss, content, args):
    """Median seconds per value-and-gradient, nstjax and torch interleaved; the check."""
    vg = jax.jit(jax.value_and_grad(fun))
    rng = np.random.default_rng(1)
    x = np.clip(content + 0.1 * rng.standard_normal(content.shape), 0, 1).astype(np.float32)
    xj = jnp.asarray(x)
    t = time.perf_counter()
    vj, gj = jax.block_until_ready(vg(xj))
    rec = {"jax_first_call_s": time.perf_counter() - t}

    def torch_vg():
        import torch
        xt = torch.from_numpy(x).requires_grad_(True)
        v = tloss(xt)
        v.backward()
        return float(v.detach()), xt.grad.numpy()

    if tloss is not None:
        vt, gt = torch_vg()
        rel_v = abs(float(vj) - vt) / abs(vt)
        rel_g = float(np.linalg.norm(np.asarray(gj) - gt) / np.linalg.norm(gt))
        rec.update(check_rel_value=rel_v, check_rel_grad=rel_g)
        log(f"check: value rel {rel_v:.1e}, gradient rel L2 {rel_g:.1e}")
        if max(rel_v, rel_g) > args.tol:
            raise SystemExit(f"objectives differ by more than {args.tol:g}; not timing")
    tj, tt = [], []
    for r in range(args.warmup + args.repeats):
        sides = ("jax", "torch") if r % 2 == 0 else ("torch", "jax")
        for side in sides:
            if side == "torch" and tloss is None:
                continue
            t = time.perf_counter()
            jax.block_until_ready(vg(xj)) if side == "jax" else torch_vg()
            if r >= args.warmup:
                (tj if side == "jax" else tt).append(time.perf_counter() - t)
    rec["jax_eval_s"] = statistics.median(tj)
    rec["jax_compile_s"] = rec["jax_first_call_s"] - rec["jax_eval_s"]
    if tt:
        rec["torch_eval_s"] = statistics.median(tt)
        rec["eval_ratio"] = rec["jax_eval_s"] / rec["torch_eval_s"]
    log(f"per evaluation: nstjax {rec['jax_eval_s']:.3f} s"
        + (f", torch {rec['torch_eval_s']:.3f} s, ratio {rec['eval_ratio']:.2f}" if tt else "")
        + f" (medians of {args.repeats}); {load()}")
    return rec


# ----------------------------------------------------------------------- trajectories

def run_nstjax(fun, content, name, args):
    """Objective and 8-bit image after every iteration, with wall times from the solve start."""
    trace, images = [], []

    def record(i, value, x):
        trace.append((int(i), time.perf_counter(), float(value)))
        images.append(np.round(np.clip(np.asarray(x), 0, 1) * 255).astype(np.uint8))

    def on_step(i, value, x):
        jax.debug.callback(record, i, value, x)
        return jnp.asarray(False)

    def solve(x0):
        opt = optimize.make_optimizer(name, history_size=args.history, lr=args.lr)
        return minimize_mod.minimize(fun, x0, opt, max_iter=args.iters, on_step=on_step)

    x0 = jnp.asarray(content)
    t = time.perf_counter()
    compiled = jax.jit(solve).lower(x0).compile()
    compile_s = time.perf_counter() - t
    trace.clear()
    images.clear()
    t0 = time.perf_counter()
    res = jax.block_until_ready(compiled(x0))
    wall = time.perf_counter() - t0
    in_box = bool(np.all((np.asarray(res.x) >= 0) & (np.asarray(res.x) <= 1)))
    return dict(name=name, compile_s=compile_s, wall_s=wall, in_box=in_box,
                iters=[i for i, _, _ in trace], times=[t - t0 for _, t, _ in trace],
                values=[v for _, _, v in trace], final=float(res.value)), images


def run_torch(tloss, content, args):
    """``torch.optim.LBFGS(lr=1, history_size=...)`` one step per call, from the content.

    Returns the run and the 8-bit image after ``--target-iters`` steps.
    """
    import torch

    x = torch.from_numpy(np.array(content)).requires_grad_(True)
    with torch.no_grad():
        f0 = abs(float(tloss(x)))
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=args.torch_history)
    seen, times, image = [], [], None

    def closure():
        opt.zero_grad()
        v = tloss(x) / f0
        v.backward()
        seen.append(float(v.detach()) * f0)  # the objective at the current iterate
        return v

    t0 = time.perf_counter()
    for k in range(1, args.iters + 1):
        opt.step(closure)
        times.append(time.perf_counter() - t0)
        if k == min(args.target_iters, args.iters):
            image = np.round(np.clip(x.detach().numpy(), 0, 1) * 255).astype(np.uint8)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        seen.append(float(tloss(x)))
    outside = float(((x < 0) | (x > 1)).float().mean())
    return dict(name="torch-lbfgs", compile_s=0.0, wall_s=wall, in_box=outside == 0,
                fraction_outside_box=outside, iters=list(range(1, args.iters + 1)),
                times=times, values=seen[1:], final=seen[-1]), image


def score_8bit(fun):
    """``f(u8 image / 255)``, the objective of a saved 8-bit file."""
    f = jax.jit(fun)
    return lambda u8: float(f(jnp.asarray(u8, jnp.float32) / 255.0))


def first_reaching(score, images, target):
    """First index whose 8-bit image scores <= target (bisection: the score falls with the
    iterations, up to 8-bit noise), or None."""
    if not images or score(images[-1]) > target:
        return None
    lo, hi = 0, len(images) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if score(images[mid]) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def value_at(run, k):
    return run["values"][k - 1] if k <= len(run["values"]) else None


def value_at_time(run, t):
    """The objective reached by wall time ``t`` (solve only), or None before the first step."""
    best = None
    for s, v in zip(run["times"], run["values"]):
        if s > t:
            break
        best = v
    return best


# ----------------------------------------------------------------------- start-up

_TORCH_TINY = r'''
import sys, time
import h5py, numpy as np, torch, torch.nn.functional as F
from PIL import Image
weights, out = sys.argv[1], sys.argv[2]
with h5py.File(weights) as f:
    params = [(torch.from_numpy(f[f"block{b}_conv{c}/kernel"][()].transpose(3, 2, 0, 1).copy()),
               torch.from_numpy(f[f"block{b}_conv{c}/bias"][()]))
              for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for c in range(1, n + 1)]
yy, xx = np.mgrid[0:48, 0:64] / 64.0
content = torch.tensor(np.stack([xx, yy, 0.5 + 0.5 * np.sin(9 * xx * yy)], -1), dtype=torch.float32)
style = torch.tensor(0.5 + 0.5 * np.sin(np.stack([40 * xx, 30 * yy, 25 * (xx + yy)], -1)),
                     dtype=torch.float32)
mean = torch.tensor([103.939, 116.779, 123.68])
def feats(img):
    x = (img.flip(-1) * 255 - mean).permute(2, 0, 1).unsqueeze(0)
    out, i = [], 0
    for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)):
        for c in range(n):
            x = F.relu(F.conv2d(x, *params[i], padding=1)); i += 1
            if c == 0 or (b == 4 and c == 1): out.append(x)
        x = F.max_pool2d(x, 2) if b < 5 else x
    return out
gram = lambda f: (lambda m: m @ m.t())(f.reshape(f.shape[1], -1))
with torch.no_grad():
    P = feats(content)[4]; A = [gram(f) for i, f in enumerate(feats(style)) if i != 4]
x = content.clone().requires_grad_(True)
opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=100)
def closure():
    opt.zero_grad(); f = feats(x)
    s = sum(((gram(g) - a) ** 2).sum() / (4 * g.shape[1] ** 2 * (g.shape[2] * g.shape[3]) ** 2)
            for g, a in zip([f[i] for i in range(len(f)) if i != 4], A))
    loss = 0.5 * ((f[4] - P) ** 2).sum() + 1e3 * s
    loss.backward(); return loss
opt.step(closure)
Image.fromarray((x.detach().clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(out)
'''


def startup(args):
    """Whole-process wall time of a tiny job, first and second run, nstjax and PyTorch."""
    rec = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NSTJAX_COMPILATION_CACHE": str(Path(tmp) / "cache")}
        jobs = {"nstjax": [sys.executable, str(ROOT / "scripts" / "stylize.py"), "--demo",
                           "--size", "64", "--iters", "1", "--output", str(Path(tmp) / "x.png")]}
        if not args.no_torch:
            script = Path(tmp) / "torch_tiny.py"
            script.write_text(_TORCH_TINY)
            jobs["torch"] = [sys.executable, str(script), str(args.weights),
                             str(Path(tmp) / "t.png")]
        for run in ("first", "second"):
            for name, cmd in jobs.items():
                t = time.perf_counter()
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                rec[f"{name}_{run}_s"] = time.perf_counter() - t
                if done.returncode:
                    log(f"{name} tiny job failed:\n{done.stderr[-2000:]}")
                    rec[f"{name}_{run}_s"] = None
    if rec.get("nstjax_second_s") and rec.get("torch_second_s"):
        rec["second_ratio"] = rec["nstjax_second_s"] / rec["torch_second_s"]
    log("start-up (64 px, 1 iteration, whole process): " + ", ".join(
        f"{k} {v:.1f}" + ("" if k.endswith("ratio") else " s") for k, v in rec.items()
        if v is not None) + f"; {load()}")
    return rec


# ----------------------------------------------------------------------- plot

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (0, 0, 0)]


def plot(results, path):
    """Objective (log scale) against wall time and against iterations, a row per size.

    Drawn with Pillow (matplotlib is not a dependency). Iterations are the load-proof axis:
    wall times of runs made one after another on a shared machine are not.
    """
    from PIL import Image, ImageDraw

    sizes = results["sizes"]
    pw, ph, m = 640, 420, 60
    img = Image.new("RGB", (2 * pw, (ph + 40) * len(sizes)), "white")
    d = ImageDraw.Draw(img)
    for k, rec in enumerate(sizes):
        runs = [r for r in rec["runs"] if r["times"]]
        vals = [v for r in runs for v in r["values"] + [rec["f_content"]]
                if v and math.isfinite(v) and v > 0]
        lo, hi = math.log10(min(vals)), math.log10(max(vals))
        hi = hi if hi > lo else lo + 1
        for panel, (axis, label) in enumerate((("times", "wall time (s)"),
                                               ("iters", "iterations"))):
            ox, oy = panel * pw, k * (ph + 40)
            tmax = max(r[axis][-1] for r in runs)

            def xy(t, v):
                return (ox + m + (pw - 2 * m) * t / tmax,
                        oy + ph - m + 20 - (ph - 2 * m) * (math.log10(v) - lo) / (hi - lo))

            d.rectangle([ox + m, oy + m - 20, ox + pw - m, oy + ph - m + 20], outline="black")
            d.text((ox + m, oy + 8), f"{rec['width']}x{rec['height']}: objective vs {label}",
                   fill="black")
            for j in range(5):
                x, y = xy(0, 10 ** (lo + (hi - lo) * j / 4))
                d.text((ox + 2, y - 6), f"{10 ** (lo + (hi - lo) * j / 4):.2e}", fill="black")
                x, y = xy(tmax * j / 4, 10 ** lo)
                d.text((x - 10, y + 4), f"{tmax * j / 4:.0f}", fill="black")
            if rec.get("target"):
                y = xy(0, rec["target"])[1]
                d.line([ox + m, y, ox + pw - m, y], fill=(180, 180, 180))
            for c, r in enumerate(runs):
                pts = [xy(t, v) for t, v in zip([0] + list(r[axis]),
                                                [rec["f_content"]] + r["values"])
                       if v and math.isfinite(v) and v > 0]
                colour = PALETTE[c % len(PALETTE)]
                if len(pts) > 1:
                    d.line(pts, fill=colour, width=2)
                d.text((ox + pw - m - 150, oy + m - 10 + 14 * c), r["name"], fill=colour)
    img.save(path)


# ----------------------------------------------------------------------- one size

def bench_size(size, vgg, args, save):
    content = nstjax.load_image(args.content, size=size)
    style = nstjax.load_image(args.style, size=size)
    h, w = content.shape[:2]
    log(f"\n== {w}×{h} px; {load()}")
    fun, spec = nstjax_objective(vgg, jnp.asarray(content), jnp.asarray(style))
    tloss = None if args.no_torch else torch_objective(vgg, content, style, spec)
    rec = {"size": size, "width": w, "height": h, **per_evaluation(fun, tloss, content, args)}
    rec["f_content"] = float(jax.jit(fun)(jnp.asarray(content)))
    score = score_8bit(fun)
    runs, target_k = [], args.target_iters
    rec["runs"] = runs
    if tloss is not None:
        run, image = run_torch(tloss, content, args)
        k = min(target_k, args.iters)
        rec["target"] = score(image)
        rec["target_time_s"] = run["times"][k - 1]
        run["reach_iter"] = k
        runs.append(run)
        save(rec)
        log(f"torch-lbfgs: {run['wall_s']:.1f} s, {run['wall_s'] / args.iters:.3f} s/iter; "
            f"its saved {k}-iteration image scores {rec['target']:.4e} (in memory "
            f"{run['values'][k - 1]:.4e}); {100 * run['fraction_outside_box']:.1f}% of pixels "
            f"outside [0, 1] at the end; {load()}")
    for name in args.optimizers:
        run, images = run_nstjax(fun, content, name, args)
        if rec.get("target") is not None:
            i = first_reaching(score, images, rec["target"])
            run["reach_iter"] = None if i is None else run["iters"][i]
            run["reach_s"] = None if i is None else run["times"][i]
        del images
        runs.append(run)
        save(rec)
        log(f"{name}: {run['wall_s']:.1f} s, {run['wall_s'] / max(1, len(run['iters'])):.3f} "
            f"s/iter, compile {run['compile_s']:.1f} s, final {run['final']:.4e}, "
            f"in box {run['in_box']}; {load()}")
    return rec


def table(results):
    for rec in results["sizes"]:
        marks = [k for k in (50, 100, 200) if k <= max(len(r["values"]) for r in rec["runs"])]
        t_eq = rec.get("target_time_s")
        log(f"\n{rec['width']}×{rec['height']}: per-evaluation ratio nstjax/torch "
            f"{rec.get('eval_ratio', float('nan')):.2f}; objective / f(content image)"
            + (f"; equal wall time t_eq = torch's {t_eq:.1f} s" if t_eq else "")
            + (f"; target {rec['target']:.4e}" if rec.get("target") else ""))
        head = (f"{'optimizer':>12} " + " ".join(f"{'@' + str(k):>8}" for k in marks)
                + f" {'@t_eq':>8} {'s/iter':>7} {'compile':>7} {'to target':>9} {'+compile':>9}"
                + f" {'vs torch':>8} {'iters':>6}")
        log(head)
        for r in rec["runs"]:
            f = lambda v, p="{:8.4f}": p.format(v / rec["f_content"]) if v else f"{'-':>8}"  # noqa
            reach = r.get("reach_s") if r["name"] != "torch-lbfgs" else rec.get("target_time_s")
            full = None if reach is None else reach + r["compile_s"]
            torch_t = rec.get("target_time_s")
            log(f"{r['name']:>12} " + " ".join(f(value_at(r, k)) for k in marks)
                + f" {f(value_at_time(r, t_eq)) if t_eq else '-':>8}"
                + f" {r['wall_s'] / max(1, len(r['iters'])):7.3f} {r['compile_s']:7.1f}"
                + (f" {reach:9.1f} {full:9.1f}" if reach is not None else f" {'-':>9} {'-':>9}")
                + (f" {full / torch_t:8.2f}" if full and torch_t else f" {'-':>8}")
                + f" {r.get('reach_iter') or '-':>6}")
    if results.get("startup"):
        log(f"\nstart-up: {results['startup']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--sizes", default="256,512", help="long edges, comma-separated")
    p.add_argument("--iters", type=int, default=200, help="iterations per optimiser")
    p.add_argument("--optimizers", default=",".join(optimize.optimizer_names()))
    p.add_argument("--history", type=int, default=10, help="L-BFGS history of nstjax's")
    p.add_argument("--lr", type=float, default=0.02, help="adam/gd step size")
    p.add_argument("--torch-history", type=int, default=100)
    p.add_argument("--target-iters", type=int, default=100,
                   help="PyTorch iterations whose saved image is the target")
    p.add_argument("--content", default=str(IMAGES / "tubingen.jpg"))
    p.add_argument("--style", default=str(IMAGES / "starry_night.jpg"))
    p.add_argument("--weights", default=None, help="vgg19.h5 (default: nstjax's)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tol", type=float, default=2e-3, help="agreement nstjax/torch required")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--startup", action="store_true", help="also time the tiny whole job")
    p.add_argument("--out", default="benchmark_out", help="folder for the JSON and PNG")
    p.add_argument("--report", nargs="+", metavar="JSON",
                   help="only print the table and draw the plot of earlier runs' JSON files")
    args = p.parse_args(argv)
    if args.report:
        runs = [json.loads(Path(f).read_text()) for f in args.report]
        results = {**runs[0], "sizes": [r for run in runs for r in run["sizes"]]}
        results["startup"] = next((r["startup"] for r in runs if r.get("startup")), None)
        table(results)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        plot(results, Path(args.out) / "benchmark.png")
        log(f"wrote {Path(args.out) / 'benchmark.png'}")
        return 0
    args.optimizers = [o for o in args.optimizers.split(",") if o]
    if not args.no_torch:
        try:
            import torch
            torch.manual_seed(0)
        except ImportError:
            log("torch not installed: nstjax only (pip install torch to compare)")
            args.no_torch = True
    from nstjax.io.weights import default_weights_path
    args.weights = args.weights or default_weights_path()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vgg = nstjax.load_vgg19(args.weights)
    log(f"jax {jax.__version__}, {os.cpu_count()} cpus; {load()}")
    results = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "sizes": []}
    if args.startup:
        results["startup"] = startup(args)
    def save(partial=None):  # after every run, so an interrupted benchmark keeps its figures
        sizes = results["sizes"] + ([partial] if partial is not None else [])
        (out / "benchmark.json").write_text(
            json.dumps({**results, "sizes": sizes}, indent=1, default=str))

    for size in (int(s) for s in args.sizes.split(",")):
        results["sizes"].append(bench_size(size, vgg, args, save))
        save()
    table(results)
    plot(results, out / "benchmark.png")
    log(f"\nwrote {out / 'benchmark.json'} and {out / 'benchmark.png'}; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
