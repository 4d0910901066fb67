"""jcjohnson/neural-style's defaults in PyTorch, on nstjax's converted weights: the classic look.

The reference that ``benchmarks/classic_look.py`` and the ``classic`` objective are measured
against.  Read from ``neural_style.lua`` (github.com/jcjohnson/neural-style, commit
07c4b8299f8fbdafec0c514fc820ff1d7ff62e46) and ``optim/lbfgs.lua``; every default is the tool's:

* input: ``preprocess`` — RGB to BGR, ``× 256`` (not 255), minus the mean pixel
  ``(103.939, 116.779, 123.68)``; the image being optimised lives in these Caffe units.
* network: VGG19 up to the last loss layer, Caffe's max pooling (2×2, stride 2, *ceil* mode,
  as ``loadcaffe`` builds it).
* content: ``ContentLoss`` at ``relu4_2``, ``5 · mean (F − P)²`` (``nn.MSECriterion``).
* style: ``StyleLoss`` at ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1``, each
  ``100 · mean over C² of (G/(C·H·W) − A/(C·H·W))²`` with ``G = F Fᵀ`` (``Gram`` then
  ``div(input:nElement())``); equal layer weights.  The style image is scaled to the same long
  edge as the content (``-style_scale 1``).
* total variation: ``TVLoss(1e-3)`` contributes only a gradient,
  ``1e-3 · ∇ ½ Σ ((x_{i,j} − x_{i,j+1})² + (x_{i,j} − x_{i+1,j})²)`` over
  ``i < H−1, j < W−1`` (``updateGradInput``); its value is not in the reported loss.
* start: ``torch.randn(C, H, W) · 0.001`` in Caffe units, i.e. the mean colour
  (``-init random``).
* solver: ``optim.lbfgs`` with ``maxIter`` iterations, ``nCorrection`` 100, ``learningRate``
  1, no line search (one evaluation per iteration, the first step ``min(1, 1/‖g‖₁)``),
  ``tolFun = tolX = −1`` (never stops early).  ``torch.optim.LBFGS`` with ``lr=1,
  history_size=100, tolerance_grad=-1, tolerance_change=-1, line_search_fn=None`` is the same
  algorithm (it was ported from that file).
* output: ``deprocess`` (``÷ 256``) clipped to [0, 1].

The tool's default is 1000 iterations; the benchmark runs 500 (the objective changes by
under 1 % after that: see the benchmark's history).  Departures: none in the objective; images
are given already resized (both tools see the same pixels), and ``torch.manual_seed`` draws
the noise, not Torch7's generator.

Run as a script to write one result and its timing:
``python benchmarks/reference/neural_style.py content.png style.png out.png --iters 500``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
SCALE = 256.0
CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_WEIGHT = 5.0
STYLE_WEIGHT = 100.0
TV_WEIGHT = 1e-3
INIT_STD = 0.001
HISTORY = 100
ITERATIONS = 500

# VGG19's layers in order: (name, kind) with the Keras-style conv names of vgg19.h5.
_BLOCKS = (2, 2, 4, 4, 4)


def vgg_layers():
    """``[(name, kind, conv_name)]`` of VGG19 in order: ``conv1_1, relu1_1, ..., pool5``."""
    out = []
    for b, n in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            out.append((f"conv{b}_{i}", "conv", f"block{b}_conv{i}"))
            out.append((f"relu{b}_{i}", "relu", None))
        out.append((f"pool{b}", "pool", None))
    return out


def read_weights(path):
    """``{conv name: (kernel OIHW, bias)}`` as float32 NumPy arrays from nstjax's ``vgg19.h5``,
    refusing a file whose preprocessing is not Caffe's (BGR, 0-255, mean only)."""
    import h5py

    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        if str(attrs.get("channel_order", "BGR")) != "BGR" or \
                not np.allclose(np.asarray(attrs.get("std", (1, 1, 1)), float), 1.0):
            raise ValueError(f"{path}: not Caffe-style weights (BGR, mean only)")
        params = {}
        for _, kind, conv in vgg_layers():
            if kind != "conv":
                continue
            g = f[conv] if conv in f else f["params"][conv]
            kernel = np.asarray(g["kernel"], np.float32)     # HWIO
            params[conv] = (np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)),
                            np.asarray(g["bias"], np.float32))
    return params


def preprocess(rgb, torch):
    """``f32[H, W, 3]`` RGB in [0, 1] to the tool's ``[1, 3, H, W]`` Caffe units."""
    x = torch.as_tensor(np.ascontiguousarray(rgb[..., ::-1]), dtype=torch.float32) * SCALE
    x = x - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32)
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def deprocess(x):
    """The tool's ``deprocess`` then clipping: ``[1, 3, H, W]`` to ``f32[H, W, 3]`` in [0, 1]."""
    import torch

    bgr = x[0].detach().permute(1, 2, 0) + torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype)
    return np.clip((bgr / SCALE).numpy()[..., ::-1], 0.0, 1.0).astype(np.float32)


class ClassicObjective:
    """The tool's loss modules on one content and style: ``value_and_grad(x)`` in Caffe units."""

    def __init__(self, params, content, style, *, content_weight=CONTENT_WEIGHT,
                 style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT,
                 content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS):
        import torch

        self.torch = torch
        self.params = {k: (torch.as_tensor(w), torch.as_tensor(b)) for k, (w, b) in
                       params.items()}
        self.content_weight, self.style_weight, self.tv_weight = (
            content_weight, style_weight, tv_weight)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        wanted = set(self.content_layers) | set(self.style_layers)
        names = [n for n, _, _ in vgg_layers()]
        self.layers = vgg_layers()[: max(names.index(n) for n in wanted) + 1]
        with torch.no_grad():
            p = self.features(preprocess(content, torch))
            a = self.features(preprocess(style, torch))
        self.p = {l: p[l] for l in self.content_layers}
        self.a = {l: self.gram(a[l]) / a[l].numel() for l in self.style_layers}

    def features(self, x):
        F = self.torch.nn.functional
        wanted = set(self.content_layers) | set(self.style_layers)
        out = {}
        for name, kind, conv in self.layers:
            if kind == "conv":
                w, b = self.params[conv]
                x = F.conv2d(x, w, b, padding=1)
            elif kind == "relu":
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            if name in wanted:
                out[name] = x
        return out

    @staticmethod
    def gram(f):
        m = f.reshape(f.shape[1], -1)
        return m @ m.t()

    def terms(self, x):
        """``{"content", "style"}``: the tool's reported losses at ``x`` (torch scalars)."""
        f = self.features(x)
        content = sum(self.content_weight * ((f[l] - self.p[l]) ** 2).mean()
                      for l in self.content_layers)
        style = sum(self.style_weight * ((self.gram(f[l]) / f[l].numel() - self.a[l]) ** 2).mean()
                    for l in self.style_layers)
        return {"content": content, "style": style}

    def tv_gradient(self, x):
        """``TVLoss:updateGradInput``: the gradient of ``τ ½ Σ (Δx² + Δy²)`` on the cropped grid."""
        g = self.torch.zeros_like(x)
        dx = x[..., :-1, :-1] - x[..., :-1, 1:]
        dy = x[..., :-1, :-1] - x[..., 1:, :-1]
        g[..., :-1, :-1] += dx + dy
        g[..., :-1, 1:] -= dx
        g[..., 1:, :-1] -= dy
        return self.tv_weight * g


def classic_transfer(params, content, style, *, iters=ITERATIONS, seed=0, history=HISTORY,
                     record_every=0):
    """Run the tool's defaults: ``(image f32[H, W, 3] in [0, 1], info dict)``.

    ``info``: ``seconds`` (the optimisation only), ``loss`` (the tool's reported total),
    ``content``/``style`` parts and, with ``record_every``, ``history`` of
    ``(iteration, loss)``.
    """
    import torch

    objective = ClassicObjective(params, content, style)
    torch.manual_seed(seed)
    h, w = content.shape[:2]
    img = (torch.randn(1, 3, h, w) * INIT_STD).requires_grad_(True)
    opt = torch.optim.LBFGS([img], lr=1, max_iter=iters, max_eval=int(iters * 1.25),
                            history_size=history, tolerance_grad=-1, tolerance_change=-1,
                            line_search_fn=None)
    calls = []

    def closure():
        opt.zero_grad()
        terms = objective.terms(img)
        loss = terms["content"] + terms["style"]
        loss.backward()
        with torch.no_grad():
            img.grad += objective.tv_gradient(img)
        calls.append(loss.item())
        return loss

    started = time.perf_counter()
    opt.step(closure)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        final = objective.terms(img)
    info = {"seconds": seconds, "evaluations": len(calls), "iterations": iters,
            "loss": float(final["content"] + final["style"]),
            "content": float(final["content"]), "style": float(final["style"])}
    if record_every:
        info["history"] = [(i + 1, v) for i, v in enumerate(calls) if (i + 1) % record_every == 0]
    return deprocess(img), info


def _load(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("output")
    p.add_argument("--iters", type=int, default=ITERATIONS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=os.environ.get("NSTJAX_WEIGHTS", "weights/vgg19.h5"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    import torch
    from PIL import Image

    if a.threads:
        torch.set_num_threads(a.threads)
    params = read_weights(a.weights)
    image, info = classic_transfer(params, _load(a.content), _load(a.style), iters=a.iters,
                                   seed=a.seed, record_every=50)
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.png")
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(tmp)
    os.replace(tmp, out)
    info["torch"] = torch.__version__
    info["threads"] = torch.get_num_threads()
    Path(str(out) + ".json").write_text(json.dumps(info, indent=1))
    print(f"{out}: {info['iterations']} iterations in {info['seconds']:.1f} s, "
          f"loss {info['loss']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
