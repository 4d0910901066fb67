"""Tests of nstjax.io.pictures: contact sheets (sweeps) and labelled grids (method grids, figures).

Each panel is a solid colour that appears nowhere else on the sheet, so where it was pasted
is found by looking for that colour; labels are black text on white, so "a label is there" is
"a region that is white apart from the label has dark pixels".  Colours are compared after
the sheet's round trip through uint8 (exact: ``to_uint8`` rounds ``c·255`` and the sheet is
``uint8 / 255``).
"""

from __future__ import annotations

import numpy as np
import pytest

from nstjax.io import pictures
from nstjax.io.image_writing import to_uint8

H, W = 20, 30
COLOURS = np.array([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.8, 0.8, 0.2],
                    [0.2, 0.8, 0.8], [0.8, 0.2, 0.8], [0.6, 0.4, 0.2], [0.2, 0.4, 0.6]],
                   np.float32)


def _panels(k, h=H, w=W):
    return np.stack([np.broadcast_to(COLOURS[i], (h, w, 3)) for i in range(k)])


def _boxes(sheet, k):
    """``(top, left, height, width)`` of each solid panel colour on the sheet."""
    u8 = np.rint(np.asarray(sheet) * 255).astype(np.uint8)
    out = []
    for i in range(k):
        ys, xs = np.nonzero(np.all(u8 == to_uint8(COLOURS[i]), axis=-1))
        assert len(ys), f"panel {i} not on the sheet"
        top, left = ys.min(), xs.min()
        height, width = ys.max() - top + 1, xs.max() - left + 1
        assert len(ys) == height * width, f"panel {i} is not one solid rectangle"
        out.append((int(top), int(left), int(height), int(width)))
    return out


def _dark(region):
    """Number of text-like (dark) pixels."""
    return int((np.asarray(region).max(axis=-1) < 0.5).sum())


def _check_picture(sheet):
    assert isinstance(sheet, np.ndarray) and sheet.dtype == np.float32
    assert sheet.ndim == 3 and sheet.shape[-1] == 3
    assert sheet.min() >= 0.0 and sheet.max() <= 1.0


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("value, text", [
    (10, "10"), (10.0, "10"), (1000.0, "1000"), (0.5, "0.5"), (1e-7, "1e-07"),
    ((0.9, 0.1), "0.9:0.1"), ([1, 0, 0], "1:0:0"), (np.array([0.25, 4.0]), "0.25:4"),
])
def test_format_value(value, text):
    assert pictures.format_value(value) == text


@pytest.mark.parametrize("name, value, text", [
    ("style_weight", 10.0, "style=10"), ("content_weight", 0.5, "content=0.5"),
    ("tv_weight", 0, "tv=0"), ("style_layer_weights", (1, 0, 0), "layers=1:0:0"),
    ("content_layer_weights", (1,), "content-layers=1"), ("style_mix", (0.9, 0.1), "mix=0.9:0.1"),
    ("style_scales", (2.0,), "scales=2"), ("style_blend", (0.5, 0.5), "blend=0.5:0.5"),
    ("hyper.mmd-poly.c", 1.0, "mmd-poly.c=1"), ("mix", (0.9, 0.1), "mix=0.9:0.1"),
])
def test_label(name, value, text):
    assert pictures.label(name, value) == text
    assert text.isascii()            # the default bitmap font has no Greek letters


# --------------------------------------------------------------------------- contact sheets


def test_contact_sheet_free_layout():
    """Five members, no grid: a near-square 2 × 3 grid in row-major order, each panel pasted
    whole at full size, a caption with every swept name under each panel."""
    settings = [{"style_weight": 10.0 ** i, "tv_weight": 0.1 * i} for i in range(5)]
    sheet = pictures.contact_sheet(_panels(5), settings, ["style_weight", "tv_weight"])
    _check_picture(sheet)
    boxes = _boxes(sheet, 5)
    assert all((h, w) == (H, W) for _, _, h, w in boxes)
    tops = sorted({t for t, _, _, _ in boxes})
    lefts = sorted({left for _, left, _, _ in boxes})
    assert len(tops) == 2 and len(lefts) == 3                      # 2 rows, 3 columns
    for i, (top, left, _, _) in enumerate(boxes):
        r, c = divmod(i, 3)
        assert (top, left) == (tops[r], lefts[c]), f"member {i} out of row-major order"
    row_gap, col_gap = tops[1] - tops[0], lefts[1] - lefts[0]
    assert row_gap > H and col_gap >= W                            # captions below, padding
    assert sheet.shape[0] >= tops[1] + row_gap - 1 and sheet.shape[1] >= lefts[2] + W
    captions = []
    for top, left, _, _ in boxes:
        caption = sheet[top + H: top + row_gap, left: left + col_gap]
        assert _dark(caption) > 10, "no caption under a panel"
        captions.append(caption)
    assert not np.array_equal(captions[0], captions[1])            # each its own values
    # Nothing but panels and captions: the margin above the first row is white.
    assert _dark(sheet[: tops[0]]) == 0


def test_contact_sheet_grid_with_two_names():
    """``grid_shape=(2, 3)`` over two names: rows are the first name's values (labelled in a
    left margin), columns the last name's (labelled above); no per-cell captions."""
    settings = [{"tv_weight": tv, "style_weight": s} for tv in (0.0, 1.0)
                for s in (1.0, 10.0, 100.0)]
    sheet = pictures.contact_sheet(_panels(6), settings, ["tv_weight", "style_weight"],
                                   grid_shape=(2, 3))
    _check_picture(sheet)
    boxes = _boxes(sheet, 6)
    tops = sorted({t for t, _, _, _ in boxes})
    lefts = sorted({left for _, left, _, _ in boxes})
    assert len(tops) == 2 and len(lefts) == 3
    for i, (top, left, h, w) in enumerate(boxes):
        assert (h, w) == (H, W) and (top, left) == (tops[i // 3], lefts[i % 3])
    assert tops[0] > 8 and lefts[0] > 20                        # a label band and a margin
    for left in lefts:                                          # column labels above
        assert _dark(sheet[: tops[0], left: left + W]) > 5
    for top in tops:                                            # row labels at the left
        assert _dark(sheet[top: top + H, : lefts[0]]) > 5
    for top, left, _, _ in boxes:                               # and no captions under cells
        assert _dark(sheet[top + H: top + H + 10, left: left + W]) == 0
    # The column labels differ (1, 10, 100), and so do the row labels (0, 1).
    pitch = lefts[1] - lefts[0]                                 # cells widen to their labels
    col = [sheet[: tops[0], left: left + pitch] for left in lefts]
    assert not np.array_equal(col[0], col[1]) and not np.array_equal(col[1], col[2])
    row = [sheet[top: top + H, : lefts[0]] for top in tops]
    assert not np.array_equal(row[0], row[1])


def test_contact_sheet_grid_with_one_name():
    """One name on a ``(1, 4)`` grid: columns labelled above, no left margin for row labels."""
    settings = [{"style_weight": s} for s in (1.0, 10.0, 100.0, 1000.0)]
    sheet = pictures.contact_sheet(_panels(4), settings, ["style_weight"], grid_shape=(1, 4))
    _check_picture(sheet)
    boxes = _boxes(sheet, 4)
    assert len({t for t, _, _, _ in boxes}) == 1
    lefts = [left for _, left, _, _ in boxes]
    assert lefts == sorted(lefts) and lefts[0] <= 8             # only the padding at the left
    top = boxes[0][0]
    for left in lefts:
        assert _dark(sheet[:top, left: left + W]) > 5


def test_contact_sheet_panels_keep_their_pixels():
    """A random panel comes back pixel for pixel (to uint8 precision) at its place."""
    rng = np.random.default_rng(0)
    images = np.concatenate([_panels(1), rng.uniform(size=(1, H, W, 3)).astype(np.float32)])
    sheet = pictures.contact_sheet(images, [{"style_weight": 1.0}, {"style_weight": 2.0}],
                                   ["style_weight"], grid_shape=(1, 2))
    (top, left0, _, _), = _boxes(sheet, 1)
    want = to_uint8(images[1])
    row = np.rint(sheet[top: top + H] * 255).astype(np.uint8)    # same row as the first
    found = [x for x in range(left0 + W, sheet.shape[1] - W + 1)
             if np.array_equal(row[:, x: x + W], want)]
    assert len(found) == 1


# --------------------------------------------------------------------------- labelled grids


def test_labelled_grid_size_and_captions():
    """Panels of different sizes scaled to the widest, ``cols`` per row, an 18-pixel caption
    band under each row; f32 RGB in [0, 1]."""
    panels = [np.broadcast_to(COLOURS[0], (20, 30, 3)), np.broadcast_to(COLOURS[1], (10, 15, 3)),
              np.broadcast_to(COLOURS[2], (30, 30, 3)), np.broadcast_to(COLOURS[3], (12, 30, 3)),
              np.broadcast_to(COLOURS[4], (24, 30, 3))]
    labels = ["c", "s", "g", "bn", "mp"]       # narrower than a 30-pixel cell
    sheet = pictures.labelled_grid(panels, labels, cols=3)
    _check_picture(sheet)
    # Cell width = widest panel (30); cell height = tallest scaled panel (30) + 18.
    assert sheet.shape == (2 * (30 + 18), 3 * 30, 3)
    boxes = _boxes(sheet, 5)
    want = [(0, 0, 20, 30), (0, 30, 20, 30), (0, 60, 30, 30), (48, 0, 12, 30), (48, 30, 24, 30)]
    assert boxes == want                                         # the 10×15 panel scaled ×2
    for i in range(5):
        r, c = divmod(i, 3)
        assert _dark(sheet[r * 48 + 30: r * 48 + 48, c * 30: (c + 1) * 30]) > 5, labels[i]
    assert _dark(sheet[48 + 30:, 60:]) == 0                      # the empty sixth cell


def test_labelled_grid_fixed_cell_width():
    panels = [np.broadcast_to(COLOURS[i], (16, 32, 3)) for i in range(4)]
    sheet = pictures.labelled_grid(panels, ["a", "b", "c", "d"], cols=4, cell=64)
    _check_picture(sheet)
    assert sheet.shape == (32 + 18, 4 * 64, 3)
    assert [b[2:] for b in _boxes(sheet, 4)] == [(32, 64)] * 4


def test_pictures_save_as_images(tmp_path):
    """Both pictures are valid input for nstjax.save_image (the scripts' use)."""
    from PIL import Image

    import nstjax

    sheet = pictures.labelled_grid(list(_panels(2)), ["x", "y"], cols=2)
    path = nstjax.save_image(tmp_path / "grid.png", sheet)
    back = np.asarray(Image.open(path), np.float32) / 255.0
    np.testing.assert_array_equal(back, sheet)
