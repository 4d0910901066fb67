"""``nstjax score``: how stylised and how faithful images are, by measures no loss optimises.

Prints one row per image: its distance to the style by three statistics (sliced Wasserstein,
Gram, mean/covariance), each relative to the content photo's own distance (1 = as
unstylised as the photo, 0 = the style's feature statistics), the relu4_2 relative error to
the content and the SSIM of the luminance.  ``--json`` prints the same (and the per-layer
values) as strict JSON.  Definitions, and which loss each measure flatters:
:mod:`nstjax.evaluate.score`.

Sizes: each image is measured at its own size (at most 512 pixels on the long edge, or
``--size``); the content is loaded at each image's size, and the style at each image's long
edge, as ``nstjax stylize`` loads it by default (or at ``--style-size``): VGG's statistics
depend on the scale of the strokes, so a style at another size than the run's is not the
distribution the run was matched to.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp

import nstjax.evaluate as E
from nstjax.cli import common
from nstjax.cli.common import UsageError
from nstjax.evaluate import score
from nstjax.io import jsonio
from nstjax.io.image import ImageError, display_path, load_image

MAX_EDGE = 512          # default cap on the long edge (a 4000-pixel photo would take minutes)
_COLUMNS = (("SW", "sliced_wasserstein"), ("Gram", "gram"), ("mean/cov", "mean_cov"))


def add_arguments(p) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="images to score")
    p.add_argument("--content", required=True, help="the content photo")
    p.add_argument("--style", required=True, help="the style image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--size", type=int, help="long edge to load every image at (default: "
                   f"their own sizes, at most {MAX_EDGE})")
    p.add_argument("--style-size", type=int, help="long edge to load the style at (default: "
                   "each image's, as nstjax stylize does)")
    p.add_argument("--weights", help="VGG19 weights, vgg19.h5 (default: $NSTJAX_WEIGHTS or "
                   "weights/vgg19.h5)")


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _edge(path, size) -> int:
    """The long edge to load ``path`` at: ``--size``, else its own, capped at MAX_EDGE."""
    if size is not None:
        return size
    edge = max(common.header_size(path))
    if edge > MAX_EDGE:
        _note(f"{path}: long edge {edge} scored at {MAX_EDGE} (--size to choose)")
    return min(edge, MAX_EDGE)


def _table(names, results) -> str:
    width = max(12, *(len(n) for n in names))
    head = f"{'image':<{width}}" + "".join(f"{c:>10}" for c, _ in _COLUMNS) \
        + f"{'relu4_2':>10}{'SSIM':>8}"
    rows = [f"{n:<{width}}" + "".join(f"{r.style[m]:>10.4f}" for _, m in _COLUMNS)
            + f"{r.content_error:>10.4f}{r.ssim:>8.4f}" for n, r in zip(names, results)]
    legend = ("style columns: distance to the style relative to the content's (1 = the "
              "content photo, 0 = the style); relu4_2: relative feature error to the content; "
              "SSIM: of the luminance (1 = the content)")
    return "\n".join([head, *rows, legend])


def _record(args, names, results) -> dict:
    return {"content": args.content, "style": args.style, "style_layers": E.STYLE_LAYERS,
            "content_layer": E.CONTENT_LAYER, "n_projections": E.N_PROJECTIONS,
            "images": [{"image": n, "size": r.shape, "style": r.style,
                        "style_per_layer": r.style_per_layer,
                        "content_error": r.content_error, "ssim": r.ssim,
                        "resized": r.resized} for n, r in zip(names, results)]}


def run(args) -> int:
    """The body of ``nstjax score``; returns the exit code."""
    for flag, value in (("--size", args.size), ("--style-size", args.style_size)):
        if value is not None and value < common.MIN_SIZE:
            raise UsageError(f"{flag} {value} is below the {common.MIN_SIZE}-pixel minimum")
    for path in [args.content, args.style, *args.images]:
        common.header_size(path)                  # every file readable, before any work
    try:
        images = [load_image(p, size=_edge(p, args.size), log=_note) for p in args.images]
        shapes = {im.shape[:2] for im in images}
        contents = {hw: load_image(args.content, shape=hw, log=_note) for hw in shapes}
        styles = {hw: load_image(args.style, size=args.style_size or max(hw), log=_note)
                  for hw in shapes}
    except ImageError as e:
        raise UsageError(str(e)) from None
    cw, ch = common.header_size(args.content)
    for path, im in zip(args.images, images):
        h, w = im.shape[:2]
        if abs(w / h - cw / ch) > 0.01 * cw / ch:
            _note(f"{path}: aspect {w}×{h} differs from the content's {cw}×{ch}; the content "
                  "is stretched to it for the content measures")
    vgg = common.load_vgg(args.weights)
    results = [None] * len(images)
    for hw, content in contents.items():          # one call per size: content at that size
        group = [k for k, im in enumerate(images) if im.shape[:2] == hw]
        for k, r in zip(group, score(vgg, content, styles[hw], [jnp.asarray(images[k])
                                                          for k in group])):
            results[k] = r
    names = [display_path(p) for p in args.images]
    print(jsonio.dumps(_record(args, names, results), indent=2) if args.json
          else _table(names, results))
    return 0
