"""Measure the default scale λ of every registered style loss (li2017 §4).

For each method, λ makes the gradient of the style loss with respect to the image about as
large as the gradient of the content loss, so that the balance factor γ = 1 is a neutral
starting point:

    λ_m = ‖∇_x L_content(x)‖₂ / ‖∇_x Σ_l L_m(F_l(x), T_l)‖₂

* content: ``content_loss(kind="sum")`` at relu4_2, weight 1, target the content image;
* style: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, weight 1 each, targets from the style
  image; hyper-parameters at their registered defaults; ``key = PRNGKey(0)`` for sampling;
* ``x``: at the content image itself the content gradient is zero, so ``x`` is the paper's
  random initialisation (uniform noise in [0, 1], seed 0; column ``noise``, the one written
  into the registry) and, for comparison, the content image plus Gaussian noise of standard
  deviation 0.1 (column ``content+0.1N``).

Gradients are taken through ``extract_features`` with one VJP per method (the cotangent is
the gradient of the loss with respect to the features), on CPU in float32.

Usage: python benchmarks/style_scales.py [--size 256] [--content ...] [--style ...]
       [--methods gram,bn] [--weights vgg19.h5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import nstjax
from nstjax import losses as style_losses
from nstjax.objective.config import default_hyper

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--content", default=str(IMAGES / "tubingen.jpg"))
    ap.add_argument("--style", default=str(IMAGES / "starry_night.jpg"))
    ap.add_argument("--methods", default=",".join(nstjax.style_loss_names()))
    ap.add_argument("--weights", type=Path, help="vgg19.h5 (default: the library's)")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    try:
        for name in names:
            nstjax.get_style_loss(name)     # an unknown name fails here, listing the valid ones
        content = jnp.asarray(nstjax.load_image(args.content, size=args.size))
        style = jnp.asarray(nstjax.load_image(args.style, size=args.size))
        vgg = nstjax.load_vgg19(args.weights)
    except (ValueError, nstjax.WeightsError) as e:      # ImageError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    layers = STYLE_LAYERS + (CONTENT_LAYER,)

    def feats(x):
        return nstjax.extract_features(vgg, x, layers)

    @jax.jit
    def pullback(x, cotangent):
        return jax.vjp(feats, x)[1](cotangent)[0]

    p = feats(content)[CONTENT_LAYER]
    style_feats = {l: f for l, f in feats(style).items() if l in STYLE_LAYERS}
    key = jax.random.PRNGKey(0)
    inits = {
        "noise": jax.random.uniform(jax.random.PRNGKey(0), content.shape, jnp.float32),
        "content+0.1N": content + 0.1 * jax.random.normal(jax.random.PRNGKey(1), content.shape),
    }
    print(f"content {tuple(content.shape)}, style {tuple(style.shape)}, "
          f"style layers {', '.join(STYLE_LAYERS)} (weight 1), content {CONTENT_LAYER} (sum)")

    base = {}
    for name, x in inits.items():
        fx = feats(x)
        zero = {l: jnp.zeros_like(f) for l, f in fx.items()}
        g_content = pullback(x, {**zero, CONTENT_LAYER: jax.grad(
            lambda f: nstjax.content_loss(f, p, kind="sum"))(fx[CONTENT_LAYER])})
        base[name] = (x, fx, float(jnp.linalg.norm(g_content)))
        print(f"‖∇ content‖ at {name}: {base[name][2]:.4g}")

    print(f"\n{'method':<12} " + " ".join(f"{'‖∇ style‖ ' + n:>24} {'λ ' + n:>14}" for n in inits)
          + f" {'registered λ':>13}   seconds")
    for name in names:
        t0 = time.perf_counter()
        method = nstjax.get_style_loss(name)
        targets = style_losses.style_targets([name], style_feats)
        hyper = default_hyper([name])
        row = []
        for init, (x, fx, g_c) in base.items():
            sf = {l: fx[l] for l in STYLE_LAYERS}

            def total(sf):
                return style_losses.style_loss_terms(
                    [name], sf, targets, jnp.ones(len(STYLE_LAYERS)), hyper, key)[0]

            gf = jax.grad(total)(sf)
            g = pullback(x, {**{l: jnp.zeros_like(f) for l, f in fx.items()}, **gf})
            g_s = float(jnp.linalg.norm(g))
            lam = g_c / g_s if g_s > 0 else float("nan")
            row.append(f"{g_s:>24.4g} {float(f'{lam:.2g}'):>14.2g}")
        print(f"{name:<12} " + " ".join(row) + f" {method.scale:>13.2g}"
              f"   {time.perf_counter() - t0:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
