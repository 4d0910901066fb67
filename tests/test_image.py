"""Tests of image files in and out (nstjax.image): mode conversion, errors, resizing, saving.

Every image is generated here with known pixel values.  Tolerances: 8-bit values convert
exactly (``v / 255`` in float32 on both sides); 16-bit values to float32 precision
(``rtol = 1e-6``); alpha compositing to one 8-bit step (``1/255``), since Pillow composites
in integers and rounds; a PNG round trip to half an 8-bit step (``0.5/255``), the rounding
of :func:`to_uint8`.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from nstjax import image as I

STEP = 1.0 / 255.0


def eight_bit(values):
    return np.asarray(values, np.float32) / np.float32(255)


def assert_rgb(a, shape):
    assert a.shape == (*shape, 3) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.min() >= 0.0 and a.max() <= 1.0


def clear_message(excinfo, path):
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# ----------------------------------------------------------------------------- modes

def test_grayscale_is_replicated_to_rgb(tmp_path):
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # 16×16, 0..240
    path = tmp_path / "g.png"
    Image.fromarray(gray, "L").save(path)
    a = I.load_image(path)
    assert_rgb(a, (16, 16))
    for c in range(3):
        np.testing.assert_array_equal(a[..., c], eight_bit(gray))


def test_rgb_is_exact(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 17, 3), dtype=np.uint8)
    path = tmp_path / "c.png"
    Image.fromarray(rgb, "RGB").save(path)
    np.testing.assert_array_equal(I.load_image(path), eight_bit(rgb))


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (200, 100, 50, 255)   # opaque: the colour itself
    rgba[:, 8:12] = (10, 20, 30, 0)     # transparent: white
    rgba[:, 12:] = (0, 0, 0, 128)       # half black over white: ~127/255
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    a = I.load_image(path)
    assert_rgb(a, (16, 16))
    np.testing.assert_array_equal(a[:, :8], np.broadcast_to(eight_bit([200, 100, 50]), (16, 8, 3)))
    np.testing.assert_array_equal(a[:, 8:12], np.ones((16, 4, 3), np.float32))
    np.testing.assert_allclose(a[:, 12:], 1.0 - 128 / 255, atol=STEP)


def test_gray_with_alpha_is_composited_over_white(tmp_path):
    la = np.zeros((16, 16, 2), np.uint8)
    la[:8] = (60, 255)
    la[8:] = (60, 0)
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    a = I.load_image(path)
    np.testing.assert_array_equal(a[:8], np.full((8, 16, 3), eight_bit(60)))
    np.testing.assert_array_equal(a[8:], np.ones((8, 16, 3), np.float32))


def test_palette_image_uses_its_palette(tmp_path):
    index = np.tile(np.repeat(np.arange(4, dtype=np.uint8), 4), (16, 1))  # columns 0..3
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 30, 60, 90]
    img = Image.fromarray(index, "P")
    img.putpalette(palette + [0] * (768 - len(palette)))
    path = tmp_path / "p.png"
    img.save(path)
    a = I.load_image(path)
    colours = eight_bit(np.array(palette).reshape(4, 3))
    np.testing.assert_array_equal(a, colours[index])
    img.save(path, transparency=3)  # index 3 transparent: white
    b = I.load_image(path)
    np.testing.assert_array_equal(b[:, 12:], np.ones((16, 4, 3), np.float32))
    np.testing.assert_array_equal(b[:, :12], colours[index[:, :12]])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_image_is_scaled_by_its_depth(tmp_path, suffix):
    levels = np.array([0, 100, 4096, 32768, 65535], np.uint16)
    gray = np.tile(np.repeat(levels, 4), (16, 1))  # 16×20
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(gray).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # still 16-bit on disk, not reduced to 8 bits
    a = I.load_image(path)
    assert_rgb(a, (16, 20))
    np.testing.assert_allclose(a, np.repeat((gray / 65535.0)[..., None], 3, -1), rtol=1e-6,
                               atol=0)
    assert 0 < a[0, 4, 0] < STEP  # 100/65535: below one 8-bit step, so not 8-bit scaled


def test_32_bit_integer_and_float_images(tmp_path):
    ints = np.tile(np.array([0, 1000, 65535], np.int32).repeat(6), (16, 1))
    path = tmp_path / "i.tif"
    Image.fromarray(ints).save(path)  # mode "I" with values in the 16-bit range
    np.testing.assert_allclose(I.load_image(path)[..., 1], ints / 65535.0, rtol=1e-6)
    floats = np.tile(np.linspace(-0.5, 1.5, 17, dtype=np.float32), (16, 1))
    path = tmp_path / "f.tif"
    Image.fromarray(floats).save(path)  # mode "F": clipped to [0, 1]
    np.testing.assert_array_equal(I.load_image(path)[..., 2], np.clip(floats, 0, 1))


def test_cmyk_and_bilevel_images(tmp_path):
    path = tmp_path / "c.tif"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(path)
    np.testing.assert_array_equal(I.load_image(path), np.ones((16, 16, 3), np.float32))
    bits = np.zeros((16, 16), bool)
    bits[:, 8:] = True
    path = tmp_path / "b.png"
    Image.fromarray(bits).save(path)
    a = I.load_image(path)
    np.testing.assert_array_equal(a[:, :8], 0.0)
    np.testing.assert_array_equal(a[:, 8:], 1.0)


# ----------------------------------------------------------------------------- errors

def test_non_image_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not a picture\n")
    with pytest.raises(I.ImageError, match="not a readable image") as e:
        I.load_image(path)
    clear_message(e, path)


def test_truncated_image_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(I.ImageError) as e:
        I.load_image(path)
    clear_message(e, path)


def test_missing_directory_and_tiny_inputs(tmp_path):
    with pytest.raises(I.ImageError, match="no such file") as e:
        I.load_image(tmp_path / "absent.png")
    clear_message(e, tmp_path / "absent.png")
    with pytest.raises(I.ImageError, match="is a directory"):
        I.load_image(tmp_path)
    path = tmp_path / "small.png"
    Image.new("RGB", (40, 8)).save(path)
    with pytest.raises(I.ImageError, match="below 16 pixels") as e:
        I.load_image(path)
    clear_message(e, path)
    Image.new("RGB", (64, 64)).save(path)
    with pytest.raises(I.ImageError, match="below"):
        I.load_image(path, shape=(8, 64))
    with pytest.raises(I.ImageError, match="below the 16-pixel minimum"):
        I.load_image(path, size=12)


# ----------------------------------------------------------------------------- resizing

def test_resize_long_edge_and_exact_shape(tmp_path):
    path = tmp_path / "r.png"
    Image.fromarray((make_image(48, 64) * 255).astype(np.uint8)).save(path)
    assert I.load_image(path).shape == (48, 64, 3)
    assert I.load_image(path, size=32).shape == (24, 32, 3)
    assert I.load_image(path, size=128).shape == (96, 128, 3)
    a = I.load_image(path, shape=(20, 30))
    assert_rgb(a, (20, 30))
    assert I.load_image(path, size=32, shape=(17, 19)).shape == (17, 19, 3)  # shape wins


@pytest.mark.parametrize("mode", ["P", "I;16", "RGBA"])
def test_exact_resize_of_other_modes(tmp_path, mode):
    base = Image.fromarray((make_image(32, 32) * 255).astype(np.uint8))
    if mode == "P":
        img = base.convert("P")
    elif mode == "RGBA":
        img = base.convert("RGBA")
    else:
        img = Image.fromarray((make_image(32, 32)[..., 0] * 65535).astype(np.uint16))
    path = tmp_path / "m.png"
    img.save(path)
    full = I.load_image(path)
    small = I.load_image(path, shape=(16, 24))
    assert_rgb(small, (16, 24))
    # same picture: channel means agree to within a few 8-bit steps after resampling.
    np.testing.assert_allclose(small.mean(axis=(0, 1)), full.mean(axis=(0, 1)), atol=4 * STEP)


# ----------------------------------------------------------------------------- saving

def test_to_uint8_rounds_and_clips():
    got = I.to_uint8(np.array([-0.1, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 1.0, 1.7]))
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 128, 255, 255])
    assert got.dtype == np.uint8


def test_save_and_load_round_trip(tmp_path):
    image = make_image(24, 40, seed=3)
    out = I.save_image(tmp_path / "sub" / "out.png", image)
    assert out == tmp_path / "sub" / "out.png"
    back = I.load_image(out)
    np.testing.assert_array_equal(back, I.to_uint8(image) / np.float32(255))
    assert np.abs(back - image).max() <= 0.5 * STEP + 1e-7
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png"]  # no temp files
    jpg = I.save_image(tmp_path / "out.jpg", image)
    assert I.load_image(jpg).shape == (24, 40, 3)


def test_save_refuses_inputs_and_unknown_extensions(tmp_path):
    src = tmp_path / "content.png"
    I.save_image(src, make_image(16, 16))
    before = src.read_bytes()
    with pytest.raises(I.ImageError, match="refusing to overwrite") as e:
        I.save_image(src, make_image(16, 16, seed=9), protect=[None, src])
    clear_message(e, src)
    assert src.read_bytes() == before
    with pytest.raises(I.ImageError, match="unknown image extension"):
        I.save_image(tmp_path / "out.xyz", make_image(16, 16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png"]


def test_write_text_atomic(tmp_path):
    path = I.write_text_atomic(tmp_path / "d" / "x.json", '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    I.write_text_atomic(path, "{}\n")
    assert path.read_text() == "{}\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_shared_images_load(shared_images):
    paths = sorted(shared_images.glob("*.jpg"))
    assert paths
    a = I.load_image(paths[0], size=64)
    assert max(a.shape[:2]) == 64 and a.shape[2] == 3 and a.dtype == np.float32
    assert a.std() > 0.01
