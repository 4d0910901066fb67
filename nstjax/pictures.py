"""Pictures made of results: labelled grids and contact sheets (sweeps, method grids, figures).

Everything returns an RGB array in [0, 1] (``f32[H, W, 3]``) for :func:`nstjax.save_image`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nstjax.image import to_uint8


def format_value(value) -> str:
    """``10`` -> ``10``, ``1000.0`` -> ``1000``, ``(0.9, 0.1)`` -> ``0.9:0.1``."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return ":".join(f"{float(v):g}" for v in value)
    return f"{float(value):g}"


def label(name: str, value) -> str:
    """``style=10``, ``layers=1:0:0``, ``mmd-poly.c=1`` (ASCII: the default font has no β)."""
    short = {"style_layer_weights": "layers", "content_layer_weights": "content-layers",
             "style_weight": "style", "content_weight": "content", "tv_weight": "tv",
             "style_mix": "mix", "style_scales": "scales", "style_blend": "blend"}.get(
        name, name.removeprefix("hyper."))
    return f"{short}={format_value(value)}"


def contact_sheet(images, settings: list[dict], swept: list[str], *,
                  grid_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A labelled sheet of the K results, ``f32[H', W', 3]`` in [0, 1] (for ``save_image``).

    Args:
      images: ``[K, H, W, 3]`` in [0, 1].
      settings: the K member settings; swept: the names to label.
      grid_shape: ``(rows, cols)`` of a grid over one or two names (the members in
        row-major order): rows are the values of the first name, columns those of the last
        (seed 003 Fig. 2 and Fig. 4), labelled at the margins.  Without it the members fill
        a near-square grid and each cell carries its own label.
    """
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text):
        x0, y0, x1, y1 = measure.textbbox((0, 0), text, font=font)
        return x1 - x0, y1 - y0

    k, (h, w) = len(images), images[0].shape[:2]
    pad = 4
    line_h = max(text_size("Ag=1")[1], 8) + 2
    if grid_shape is not None:
        rows, cols = grid_shape
        row_labels = [label(swept[0], settings[r * cols][swept[0]]) for r in range(rows)] \
            if len(swept) == 2 else []
        col_labels = [label(swept[-1], settings[c][swept[-1]]) for c in range(cols)]
        cell_labels = None
    else:
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        row_labels, col_labels = [], []
        cell_labels = [[label(n, s[n]) for n in swept] for s in settings]
    left = max([text_size(t)[0] for t in row_labels], default=0) + (2 * pad if row_labels else 0)
    top = line_h + pad if col_labels else 0
    caption = len(swept) * line_h if cell_labels else 0
    texts = col_labels + [t for cell in cell_labels or () for t in cell]
    cell_w = max([w] + [text_size(t)[0] for t in texts]) + pad
    cell_h = h + caption + pad
    sheet = Image.new("RGB", (left + cols * cell_w + pad, top + rows * cell_h + pad),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i in range(k):
        r, c = divmod(i, cols)
        x, y = left + pad + c * cell_w, top + pad + r * cell_h
        sheet.paste(Image.fromarray(to_uint8(images[i])), (x, y))
        for j, text in enumerate(cell_labels[i] if cell_labels else ()):
            draw.text((x, y + h + j * line_h), text, fill=(0, 0, 0), font=font)
    for c, text in enumerate(col_labels):
        tw, _ = text_size(text)
        draw.text((left + pad + c * cell_w + max(0, (w - tw) // 2), pad // 2), text,
                  fill=(0, 0, 0), font=font)
    for r, text in enumerate(row_labels):
        draw.text((pad, top + pad + r * cell_h + (h - line_h) // 2), text, fill=(0, 0, 0),
                  font=font)
    return np.asarray(sheet, np.float32) / 255.0


def labelled_grid(panels, labels, *, cols: int, cell: int | None = None) -> np.ndarray:
    """Tile RGB [0, 1] arrays into one image with a caption under each, ``f32[H, W, 3]``.

    Args:
      panels: RGB arrays in [0, 1] (sizes may differ; each is scaled to the cell width).
      labels: one caption per panel.
      cols: panels per row.
      cell: cell width in pixels (default: the widest panel).
    """
    ims = [Image.fromarray(to_uint8(p)) for p in panels]
    w = cell or max(im.width for im in ims)
    h = max(round(im.height * w / im.width) for im in ims)
    pad = 18
    rows = -(-len(ims) // cols)
    sheet = Image.new("RGB", (cols * w, rows * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (im, label) in enumerate(zip(ims, labels)):
        r, c = divmod(i, cols)
        sheet.paste(im.resize((w, round(im.height * w / im.width))), (c * w, r * (h + pad)))
        draw.text((c * w + 4, r * (h + pad) + h + 3), label, fill="black")
    return np.asarray(sheet, np.float32) / 255.0
