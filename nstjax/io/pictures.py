"""Pictures made of results: labelled grids and contact sheets (sweeps, method grids, figures).

Everything returns an RGB array in [0, 1] (``f32[H, W, 3]``) for :func:`nstjax.save_image`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nstjax.io.image_writing import publish_file, to_uint8


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
        (li2017 Fig. 2 and Fig. 4), labelled at the margins.  Without it the members fill
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


# ------------------------------------------------------------------- pictures of a run

CURVE_COLOURS = {"total": (0, 0, 0), "content": (31, 119, 180), "style": (214, 39, 40),
                 "tv": (44, 160, 44)}


def _decades(lo: float, hi: float) -> tuple[int, int]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return a, max(b, a + 1)


def loss_curve(series: dict, *, width: int = 480, height: int = 300, title: str = "",
               legend: bool = True) -> np.ndarray:
    """A log-scale plot of loss terms against the iteration, ``f32[height, width, 3]``.

    Drawn with Pillow (no plotting library): a black frame, decades on the y axis
    (``1e3``), iterations on the x axis, one line per series; a series of at most 40
    points (terms measured at snapshot frames) also gets a dot per point.  Values that are
    not finite or not positive are left out (a log axis has no place for them).

    Args:
      series: ``{name: (iterations, values)}``, e.g. ``{"total": (1..n, history),
        "content": (frames, c), "style": (frames, s)}``; colours for ``total``,
        ``content``, ``style`` and ``tv`` are fixed, others grey.
      width, height: pixels.
      title: a line above the plot.
      legend: name each series in its colour.

    Returns:
      RGB in [0, 1] for :func:`nstjax.save_image`.

    Raises:
      ValueError: no positive finite value in any series.
    """
    clean = {}
    for name, (its, vals) in series.items():
        its, vals = np.asarray(its, np.float64).ravel(), np.asarray(vals, np.float64).ravel()
        ok = np.isfinite(vals) & (vals > 0) & np.isfinite(its)
        if ok.any():
            clean[name] = (its[ok], vals[ok])
    if not clean:
        raise ValueError("loss curve: no positive finite value to plot")
    y_lo, y_hi = _decades(min(v.min() for _, v in clean.values()),
                          max(v.max() for _, v in clean.values()))
    x_hi = max(1.0, max(i.max() for i, _ in clean.values()))
    font = ImageFont.load_default()
    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    left, right, top, bottom = 44, 14, 16 if title else 6, 18
    x0, x1, y0, y1 = left, width - right, top, height - bottom

    def px(it, v):
        fx = it / x_hi
        fy = (math.log10(v) - y_lo) / (y_hi - y_lo)
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    step = max(1, math.ceil((y_hi - y_lo) / max(1, (y1 - y0) // 24)))
    for d in range(y_lo, y_hi + 1, step):
        _, y = px(0, 10.0 ** d)
        draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        draw.text((2, y - 5), f"1e{d}", fill=(0, 0, 0), font=font)
    nice = 10 ** math.floor(math.log10(x_hi))
    tick = next(t * nice for t in (0.1, 0.2, 0.5, 1, 2, 5, 10) if x_hi / (t * nice) <= 6)
    t = 0.0
    while t <= x_hi + 1e-9:
        x, _ = px(t, 10.0 ** y_lo)
        draw.line([(x, y1), (x, y1 + 3)], fill=(0, 0, 0))
        draw.text((x - 6, y1 + 4), f"{t:g}", fill=(0, 0, 0), font=font)
        t += tick
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    if title:
        draw.text((x0, 2), title, fill=(0, 0, 0), font=font)
    for k, (name, (its, vals)) in enumerate(clean.items()):
        colour = CURVE_COLOURS.get(name, (128, 128, 128))
        points = [px(i, v) for i, v in zip(its, vals)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2 if name == "total" else 1)
        if len(points) <= 40:
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        if legend:
            draw.text((x1 - 60, y0 + 3 + 11 * k), name, fill=colour, font=font)
    return np.asarray(im, np.float32) / 255.0


ANIMATION_FORMATS = {".gif": "GIF", ".webp": "WEBP"}


def save_animation(path, frames, *, frame_ms: int = 100, last_ms: int = 1000):
    """Write RGB frames in [0, 1] as an animated GIF or WebP (format from the extension).

    Atomic (a temporary file in the same folder, then a rename); loops forever; the last
    frame is held ``last_ms``.  GIF frames are reduced to an adaptive 256-colour palette;
    WebP frames are stored with quality 90.

    Args:
      path: ``.gif`` or ``.webp``.
      frames: sequence of ``f32[H, W, 3]`` (or ``uint8``) of one size.
      frame_ms: display time of every frame but the last.

    Returns:
      The path written.

    Raises:
      ValueError: another extension, no frames, or frames of different sizes.
    """
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    fmt = ANIMATION_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: an animation is .gif or .webp, not {path.suffix!r}")
    ims = [Image.fromarray(f if np.asarray(f).dtype == np.uint8 else to_uint8(f))
           for f in frames]
    if not ims:
        raise ValueError(f"{path}: no frames to animate")
    if len({im.size for im in ims}) > 1:
        raise ValueError(f"{path}: frames of different sizes")
    if fmt == "GIF":
        ims = [im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256) for im in ims]
    durations = [frame_ms] * (len(ims) - 1) + [last_ms]
    extra = {"quality": 90, "method": 4} if fmt == "WEBP" else {"disposal": 1}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix + ".part",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            ims[0].save(f, format=fmt, save_all=True, append_images=ims[1:],
                        duration=durations, loop=0, **extra)
        os.chmod(tmp, 0o644)
        publish_file(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def with_loss_curve(image, series: dict, *, min_width: int = 160) -> np.ndarray:
    """An image with its small loss curve below (a sweep member's cell), ``f32[H', W', 3]``.

    The cell is ``max(W, min_width)`` wide (the image top-left on white); the curve is that
    wide and ``0.55×`` as high (at least 80 pixels), drawn by :func:`loss_curve` (a note
    instead where nothing is positive and finite).  Cells of
    images of one size have one size, as :func:`contact_sheet` needs.
    """
    image = np.asarray(image, np.float32)
    h, w = image.shape[:2]
    width = max(w, min_width)
    height = max(80, round(0.55 * width))
    try:
        curve = loss_curve(series, width=width, height=height)
    except ValueError:                     # nothing positive and finite: say so
        blank = Image.new("RGB", (width, height), (255, 255, 255))
        ImageDraw.Draw(blank).text((4, 4), "no finite loss", fill=(0, 0, 0))
        curve = np.asarray(blank, np.float32) / 255.0
    cell = np.ones((h + curve.shape[0], width, 3), np.float32)
    cell[:h, :w] = image
    cell[h:] = curve
    return cell
