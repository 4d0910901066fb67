#!/usr/bin/env python
"""Accelerator benchmark (issue 13): per-evaluation time, share of the card's peak, K = 8
sweep against 8 runs, PyTorch on the same device, per precision.

On whatever JAX's default device is (a GPU when ``jax[cuda12]`` is installed), in one run:

* **per evaluation** at each ``--sizes`` (default 512 and 1024 px): the value and gradient of
  the default objective (Gram, relu1_1..relu5_1, content relu4_2) with respect to the image,
  for each ``--precisions`` (float32, tf32, bf16), median of ``--repeats`` after a warm-up;
  the FLOPs XLA counts for the compiled program (``cost_analysis``) divided by the time and
  by the card's dense peak for that precision (table :data:`PEAK_TFLOPS`, or
  ``--peak-tflops``);
* **500 iterations** (``--iters``) of the default solver at the first size: wall time;
* **sweep**: ``nstjax.sweep`` over 8 style weights against 8 ``nstjax.stylize`` runs, at
  ``--sweep-size`` (256) px and ``--sweep-iters`` iterations, compile excluded (each side
  runs twice, the second is timed): the speed-up;
* **PyTorch** (when ``import torch`` works; on CUDA when torch sees a GPU): the same
  objective on the same weights, value and gradient checked to agree (relative ``--tol``),
  per-evaluation time and the throughput ratio;
* **memory**: each evaluation program's size (XLA's ``memory_analysis``) and the device's
  peak bytes in use over the whole run (where the backend reports it).

``--tiny`` runs everything at toy sizes (64/128 px, 5 iterations), the way it is checked on
a CPU.  Weights: ``weights/vgg19.h5`` (``nstjax convert-weights``); without them a random
VGG19 of the real widths is timed (same FLOPs) and the PyTorch check still applies.
Writes the table to stdout and ``--out`` (JSON).

Usage:
  python benchmarks/gpu.py                       # on the GPU
  python benchmarks/gpu.py --tiny                # anywhere, in a minute or two
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nstjax
from nstjax.io import demo
from nstjax.model.vgg import VGG_WIDTHS
from nstjax.objective.terms import compute_targets, total_loss

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from torch_objective import reference_spec, torch_objective  # noqa: E402

# Dense peak TFLOP/s per precision (vendor data sheets, SXM parts; no sparsity).
PEAK_TFLOPS = {
    "H100": {"float32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H200": {"float32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "A100": {"float32": 19.5, "tf32": 156.0, "bf16": 312.0},
    "L4": {"float32": 30.3, "tf32": 60.0, "bf16": 121.0},
    "A10": {"float32": 31.2, "tf32": 62.5, "bf16": 125.0},
}


def log(msg=""):
    print(msg, flush=True)


def peak_for(device, precision, override):
    if override:
        return override
    kind = getattr(device, "device_kind", "")
    for name, peaks in PEAK_TFLOPS.items():
        if name in kind:
            return peaks[precision]
    return None


def load_network():
    try:
        return nstjax.load_vgg19(), "vgg19.h5"
    except nstjax.WeightsError:
        return nstjax.init_random_weights(jax.random.PRNGKey(0), widths=VGG_WIDTHS), \
            "random VGG19 (real widths)"


def images(size):
    return (jnp.asarray(demo.demo_content(3 * size // 4, size)),
            jnp.asarray(demo.demo_style(size, size)))


def timed(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def per_evaluation(vgg, size, precision, args, device):
    content, style = images(size)
    ref = nstjax.Objective()
    objective = nstjax.Objective(precision=precision)
    weights = nstjax.loss_weights(objective)
    targets = compute_targets(vgg, content, [style], objective=ref)
    key = jax.random.PRNGKey(0)
    vg = jax.jit(jax.value_and_grad(
        lambda x: total_loss(x, vgg, targets, weights, key, objective=objective)))
    compiled = vg.lower(content).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float((cost or {}).get("flops", float("nan")))
    seconds = timed(compiled, content, repeats=args.repeats)
    peak = peak_for(device, precision, args.peak_tflops)
    mem = compiled.memory_analysis()
    program_mb = None if mem is None else (mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                           + mem.output_size_in_bytes) / 2 ** 20
    rec = dict(size=size, shape=list(content.shape), precision=precision, eval_s=seconds,
               gflop=flops / 1e9, tflops=flops / seconds / 1e12,
               peak_fraction=(flops / seconds / 1e12 / peak) if peak else None,
               program_mib=program_mb)
    log(f"  {size:5d} px {precision:8s} {seconds * 1e3:9.1f} ms/eval  "
        f"{rec['tflops']:7.2f} TFLOP/s" + (f"  {rec['peak_fraction']:.1%} of peak"
                                          if peak else "")
        + ("" if program_mb is None else f"  program memory {program_mb:.0f} MiB"))
    return rec


def solve_time(vgg, size, iters):
    content, style = images(size)
    solver = nstjax.Solver(max_iter=iters)
    run = lambda: nstjax.stylize(vgg, content, style, key=jax.random.PRNGKey(0),  # noqa: E731
                                 solver=solver)
    t = time.perf_counter()
    jax.block_until_ready(run().image)
    first = time.perf_counter() - t
    t = time.perf_counter()
    res = run()
    jax.block_until_ready(res.image)
    rec = dict(size=size, iters=int(res.n_iter), first_s=first, second_s=time.perf_counter() - t)
    log(f"  {iters} iterations at {size} px: {rec['second_s']:.2f} s "
        f"(first run with compilation {first:.2f} s)")
    return rec


def sweep_vs_sequential(vgg, size, iters, k=8):
    content, style = images(size)
    betas = [float(b) for b in np.geomspace(1, 1000, k)]
    solver = nstjax.Solver(optimizer="adam", max_iter=iters, lr=0.02)
    key = jax.random.PRNGKey(0)
    objective = nstjax.Objective()

    def sweep():
        r = nstjax.sweep(vgg, content, style, {"style_weight": betas}, key=key,
                         objective=objective, solver=solver)
        return jax.block_until_ready(r.images)

    def sequential():
        out = [nstjax.stylize(vgg, content, style, key=key, objective=objective,
                              weights=nstjax.loss_weights(objective, style_weight=b),
                              solver=solver).image for b in betas]
        return jax.block_until_ready(out)

    times = {}
    for name, fn in (("sweep", sweep), ("sequential", sequential)):
        fn()
        t = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t
    rec = dict(size=size, k=k, iters=iters, sweep_s=times["sweep"],
               sequential_s=times["sequential"], speedup=times["sequential"] / times["sweep"])
    log(f"  K = {k} at {size} px, {iters} iterations: sweep {rec['sweep_s']:.2f} s, "
        f"sequential {rec['sequential_s']:.2f} s, speed-up {rec['speedup']:.2f}×")
    return rec


def torch_comparison(vgg, size, args):
    """The default objective in PyTorch on the same device kind and weights."""
    try:
        import torch
    except ImportError:
        log("  PyTorch not installed: skipped")
        return None
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    content, style = images(size)
    objective = nstjax.Objective()
    weights = nstjax.loss_weights(objective)
    targets = compute_targets(vgg, content, [style], objective=objective)
    key = jax.random.PRNGKey(0)
    vg = jax.jit(jax.value_and_grad(
        lambda x: total_loss(x, vgg, targets, weights, key, objective=objective)))
    loss = torch_objective(vgg, content, style, reference_spec(objective, weights),
                           device=dev)
    T = lambda a: torch.as_tensor(np.array(a), dtype=torch.float32, device=dev)  # noqa: E731

    x0 = np.asarray(content) * 0.9 + 0.05

    def torch_vg():
        xt = T(x0).requires_grad_(True)
        v = loss(xt)
        v.backward()
        if dev == "cuda":
            torch.cuda.synchronize()
        return float(v.detach()), xt.grad.cpu().numpy()

    vj, gj = vg(jnp.asarray(x0))
    vt, gt = torch_vg()
    value_err = abs(vt - float(vj)) / abs(float(vj))
    grad_err = float(np.abs(gt - np.asarray(gj)).max() / np.abs(np.asarray(gj)).max())
    jax_s = timed(vg, jnp.asarray(x0), repeats=args.repeats)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        torch_vg()
        times.append(time.perf_counter() - t)
    torch_s = statistics.median(times)
    rec = dict(size=size, device=dev, value_rel_err=value_err, grad_rel_err=grad_err,
               agree=value_err < args.tol and grad_err < args.tol, jax_eval_s=jax_s,
               torch_eval_s=torch_s, throughput_ratio=torch_s / jax_s)
    log(f"  PyTorch ({dev}) at {size} px: agree={rec['agree']} (value {value_err:.1e}, "
        f"gradient {grad_err:.1e}); nstjax {jax_s * 1e3:.1f} ms, torch {torch_s * 1e3:.1f} ms "
        f"per evaluation: nstjax throughput {rec['throughput_ratio']:.2f}× PyTorch's")
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--precisions", nargs="+", default=["float32", "tf32", "bf16"])
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--sweep-size", type=int, default=256)
    p.add_argument("--sweep-iters", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--peak-tflops", type=float, help="the device's dense peak (overrides "
                   "the table)")
    p.add_argument("--tiny", action="store_true", help="toy sizes: check it runs (CPU)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default="benchmark_gpu.json")
    args = p.parse_args(argv)
    if args.tiny:
        args.sizes, args.iters, args.sweep_size, args.sweep_iters, args.repeats = \
            [64, 128], 5, 64, 5, 2
    device = jax.devices()[0]
    vgg, source = load_network()
    log(f"device: {device.platform} {getattr(device, 'device_kind', '')} "
        f"({jax.device_count()} devices); weights: {source}; jax {jax.__version__}")
    record = dict(device=str(getattr(device, "device_kind", device.platform)),
                  platform=device.platform, weights=source, evaluations=[])
    log("per evaluation (value and gradient):")
    for size in args.sizes:
        for precision in args.precisions:
            record["evaluations"].append(per_evaluation(vgg, size, precision, args, device))
    log("whole solve:")
    record["solve"] = solve_time(vgg, args.sizes[0], args.iters)
    log("sweep against sequential runs:")
    record["sweep"] = sweep_vs_sequential(vgg, args.sweep_size, args.sweep_iters)
    if not args.no_torch:
        log("PyTorch:")
        record["torch"] = torch_comparison(vgg, args.sizes[0], args)
    stats = device.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        record["peak_device_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
        log(f"peak device memory: {record['peak_device_mib']:.0f} MiB")
    Path(args.out).write_text(json.dumps(record, indent=2))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
