"""Tests of image files in and out (nstjax.io.image, nstjax.io.image_writing): mode conversion,
errors, resizing, saving.

Every image is generated here with known pixel values.  Tolerances: 8-bit values convert
exactly (``v / 255`` in float32 on both sides); 16-bit values to float32 precision
(``rtol = 1e-6``); alpha compositing to one 8-bit step (``1/255``), since Pillow composites
in integers and rounds; a PNG round trip to half an 8-bit step (``0.5/255``), the rounding
of :func:`to_uint8`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from nstjax.io import image as I
from nstjax.io import image_writing as W

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
    floats = np.tile(np.linspace(0.0, 1.0, 17, dtype=np.float32), (16, 1))
    path = tmp_path / "f.tif"
    Image.fromarray(floats).save(path)  # mode "F": taken as it is
    np.testing.assert_array_equal(I.load_image(path)[..., 2], floats)
    Image.fromarray(floats * 2.0 - 0.5).save(path)   # beyond [0, 1]: refused, not clipped
    with pytest.raises(I.ImageError, match="float pixels from -0.5 to 1.5"):
        I.load_image(path)


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
    with pytest.raises(I.ImageError, match="is a folder, not an image file"):
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
    got = W.to_uint8(np.array([-0.1, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 1.0, 1.7]))
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 128, 255, 255])
    assert got.dtype == np.uint8


def test_save_and_load_round_trip(tmp_path):
    image = make_image(24, 40, seed=3)
    out = W.save_image(tmp_path / "sub" / "out.png", image)
    assert out == tmp_path / "sub" / "out.png"
    back = I.load_image(out)
    np.testing.assert_array_equal(back, W.to_uint8(image) / np.float32(255))
    assert np.abs(back - image).max() <= 0.5 * STEP + 1e-7
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png"]  # no temp files
    jpg = W.save_image(tmp_path / "out.jpg", image)
    assert I.load_image(jpg).shape == (24, 40, 3)


def test_save_refuses_inputs_and_unknown_extensions(tmp_path):
    src = tmp_path / "content.png"
    W.save_image(src, make_image(16, 16))
    before = src.read_bytes()
    with pytest.raises(I.ImageError, match="refusing to overwrite") as e:
        W.save_image(src, make_image(16, 16, seed=9), protect=[None, src])
    clear_message(e, src)
    assert src.read_bytes() == before
    with pytest.raises(I.ImageError, match="unknown image extension"):
        W.save_image(tmp_path / "out.xyz", make_image(16, 16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png"]


def test_write_text_atomic(tmp_path):
    path = W.write_text_atomic(tmp_path / "d" / "x.json", '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    W.write_text_atomic(path, "{}\n")
    assert path.read_text() == "{}\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_shared_images_load(shared_images):
    paths = sorted(shared_images.glob("*.jpg"))
    assert paths
    a = I.load_image(paths[0], size=64)
    assert max(a.shape[:2]) == 64 and a.shape[2] == 3 and a.dtype == np.float32
    assert a.std() > 0.01


# ----------------------------------------------------------------------------- large files

def png_bytes(width, height, *, depth=1, colour=0, rows=True):
    """A valid PNG of zero pixels (``rows=False``: the header alone, claiming the size).

    Rows are compressed as they are made, so a 20000×20000 file costs a few MB of memory.
    """
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    out = [b"\x89PNG\r\n\x1a\n",
           chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))]
    if rows:
        channels = {0: 1, 2: 3}[colour]
        row = bytes(1 + (width * depth * channels + 7) // 8)
        z = zlib.compressobj(9)
        data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
        out.append(chunk(b"IDAT", data))
    out.append(chunk(b"IEND", b""))
    return b"".join(out)


@contextlib.contextmanager
def no_warnings():
    """Fail on any warning at all (Pillow's DecompressionBombWarning included)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not caught, [str(w.message) for w in caught]


@pytest.mark.parametrize("w, h", [(100_000, 100_000), (20_000, 20_000)])
def test_decompression_bombs_are_refused_with_pixel_count_and_limit(tmp_path, w, h):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(w, h, rows=(w == 20_000)))
    with no_warnings():
        assert I.image_size(path) == (w, h)  # header only: safe on a bomb
        for call in (lambda: I.load_image(path, size=256), lambda: I.scaled_shape(path, 256)):
            with pytest.raises(I.ImageError) as e:
                call()
            msg = clear_message(e, path)
            assert f"{w}×{h} is {w * h:,} pixels" in msg
            assert f"{I.MAX_PIXELS:,}-pixel limit" in msg


def test_large_image_under_the_limit_reads_without_pillows_warning(tmp_path):
    w = h = 12_000  # 144 MP: over Pillow's 89 MP warning, under our 179 MP limit
    assert Image.MAX_IMAGE_PIXELS < w * h <= I.MAX_PIXELS
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(w, h))  # all black, 1 bit per pixel
    notes = []
    with no_warnings():
        assert I.scaled_shape(path, 64) == (64, 64)
        a = I.load_image(path, size=64, log=notes.append)
    assert notes == []
    assert a.shape == (64, 64, 3) and a.max() == 0.0
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's setting restored


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    # A small stand-in: lower the limit to 1 MP and read a 2 MP JPEG.
    monkeypatch.setattr(I, "MAX_PIXELS", 1_000_000)
    path = tmp_path / "big.jpg"
    Image.fromarray((make_image(1000, 2000) * 255).astype(np.uint8)).save(path, quality=95)
    with pytest.raises(I.ImageError, match="2000×1000 is 2,000,000 pixels"):
        I.load_image(path)  # full size asked: nothing to reduce
    # At long edge 256 the decoder works at 1/4 scale (500×250 ≥ 256×128, 1/8 would not be).
    assert I.scaled_shape(path, 256) == (128, 256)
    a = I.load_image(path, size=256)
    assert a.shape == (128, 256, 3)
    ref = np.asarray(Image.fromarray((make_image(1000, 2000) * 255).astype(np.uint8))
                     .resize((256, 128), Image.Resampling.LANCZOS), np.float32) / 255
    # DCT-domain scaling plus JPEG loss: within 4 8-bit steps on average of the exact resize.
    assert np.abs(a - ref).mean() < 4 * STEP


# ----------------------------------------------------------------------------- file names

def test_non_utf8_spaced_and_newline_file_names(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9 photo \xff.png"
    with open(raw, "wb") as f:
        Image.fromarray((make_image(20, 24) * 255).astype(np.uint8)).save(f, format="PNG")
    as_str = os.fsdecode(raw)
    for p in (raw, as_str, Path(as_str)):
        assert I.load_image(p).shape == (20, 24, 3)
        assert I.image_size(p) == (24, 20)
    out = W.save_image(os.fsencode(tmp_path) + b"/out \xfe.png", make_image(20, 24))
    assert os.path.exists(os.fsencode(out))
    missing = os.fsencode(tmp_path) + b"/gone\xff\nx.png"
    with pytest.raises(I.ImageError, match="no such file") as e:
        I.load_image(missing)
    msg = str(e.value)
    assert "\n" not in msg and "gone\\xff\\x0ax.png" in msg
    msg.encode("utf-8")  # printable anywhere: no lone surrogates


def test_folder_missing_and_unreadable_paths_for_the_header_reader(tmp_path):
    with pytest.raises(I.ImageError, match="is a folder, not an image file"):
        I.image_size(tmp_path)
    with pytest.raises(I.ImageError, match="no such file"):
        I.image_size(tmp_path / "nope" / "x.png")
    text = tmp_path / "x.png"
    text.write_text("hello")
    with pytest.raises(I.ImageError, match="not a readable image") as e:
        I.image_size(text)
    clear_message(e, text)
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(I.ImageError, match="is empty"):
        I.load_image(empty)


# ----------------------------------------------------------------------------- orientation, colour

@pytest.mark.parametrize("orientation, k", [(3, 2), (6, -1), (8, 1)])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, orientation, k, suffix):
    pixels = (make_image(24, 40, seed=5) * 255).astype(np.uint8)  # stored 40 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = orientation
    path, plain = tmp_path / f"phone{suffix}", tmp_path / f"plain{suffix}"
    Image.fromarray(pixels).save(path, exif=exif)
    Image.fromarray(pixels).save(plain)  # same pixels, no orientation tag
    stored = I.load_image(plain)  # for PNG exactly the pixels, for JPEG their decoding
    if suffix == ".png":
        np.testing.assert_array_equal(stored, pixels / np.float32(255))
    upright = np.rot90(stored, k)  # 3: 180°, 6: turn clockwise, 8: counter-clockwise
    assert I.image_size(path) == (upright.shape[1], upright.shape[0])
    np.testing.assert_array_equal(I.load_image(path), upright)  # a lossless turn
    small = I.load_image(path, size=32)  # the long edge is the upright one
    assert small.shape[:2] == ((19, 32) if k == 2 else (32, 19))
    assert I.scaled_shape(path, 32) == small.shape[:2]


def icc_profile(columns):
    """A minimal ICC v2 RGB matrix/TRC display profile (gamma 2.2) with the given primaries.

    ``columns``: the D50 XYZ of the red, green and blue primaries.
    """
    def s15(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(v):
        return b"XYZ " + bytes(4) + b"".join(s15(c) for c in v)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    white = (0.9642, 1.0, 0.8249)
    tags = [(b"wtpt", xyz(white)), (b"rXYZ", xyz(columns[0])), (b"gXYZ", xyz(columns[1])),
            (b"bXYZ", xyz(columns[2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table, data, offset = [], b"", 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        table.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I4sI", size, b"none", 0x02100000) + b"mntrRGB XYZ " + bytes(12)
              + b"acsp" + bytes(24) + struct.pack(">I", 0) + b"".join(s15(c) for c in white)
              + bytes(48))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


SRGB_D50 = [(0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)]


def test_embedded_icc_profile_is_converted_to_srgb(tmp_path):
    pixels = np.zeros((16, 48, 3), np.uint8)
    pixels[:, :16] = (255, 0, 0)
    pixels[:, 16:32] = (0, 255, 0)
    pixels[:, 32:] = (0, 0, 255)
    swapped = icc_profile([SRGB_D50[1], SRGB_D50[0], SRGB_D50[2]])  # red and green swapped
    path = tmp_path / "tagged.png"
    Image.fromarray(pixels).save(path, icc_profile=swapped)
    a = I.load_image(path)
    # Stored red means sRGB green and vice versa; blue stays blue.  Tolerance: the matrix
    # values are rounded to 4 decimals and 16.16 fixed point, worth a few 8-bit steps.
    np.testing.assert_allclose(a[0, 0], [0, 1, 0], atol=3 * STEP)
    np.testing.assert_allclose(a[0, 20], [1, 0, 0], atol=3 * STEP)
    np.testing.assert_allclose(a[0, 40], [0, 0, 1], atol=3 * STEP)
    # An sRGB-like profile changes nothing beyond the same rounding.
    Image.fromarray(pixels).save(path, icc_profile=icc_profile(SRGB_D50))
    np.testing.assert_allclose(I.load_image(path), pixels / np.float32(255), atol=3 * STEP)


def test_unusable_icc_profile_is_ignored_with_one_note(tmp_path):
    pixels = (make_image(16, 16) * 255).astype(np.uint8)
    path = tmp_path / "bad icc.png"
    Image.fromarray(pixels).save(path, icc_profile=b"not a profile at all")
    notes = []
    a = I.load_image(path, log=notes.append)
    np.testing.assert_array_equal(a, pixels / np.float32(255))
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "ignoring its colour profile" in notes[0] and str(path) in notes[0]


def test_palette_and_bilevel_images_are_resized_with_lanczos_not_nearest(tmp_path):
    stripes = np.tile(np.array([0, 1], np.uint8), (64, 32))  # 64×64, 1-pixel columns
    img = Image.fromarray(stripes, "P")
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    path = tmp_path / "p.png"
    img.save(path)
    a = I.load_image(path, size=32)  # halving: every output pixel mixes both colours
    assert a.shape == (32, 32, 3)
    np.testing.assert_allclose(a[4:-4, 4:-4], 0.5, atol=0.1)  # NEAREST would give 0 or 1
    Image.fromarray(stripes.astype(bool)).save(path)
    np.testing.assert_allclose(I.load_image(path, size=32)[4:-4, 4:-4], 0.5, atol=0.1)


# ----------------------------------------------------------------------------- output faults

def no_part_files(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


def test_output_that_is_a_folder_or_unwritable_names_the_users_path(tmp_path):
    folder = tmp_path / "result.png"
    folder.mkdir()
    for call in (W.save_image, lambda p, _: W.check_writable(p)):
        with pytest.raises(I.ImageError, match="is a folder; give a file name") as e:
            call(folder, make_image(16, 16))
        clear_message(e, folder)
        proc = Path("/proc/x.png")
        with pytest.raises(I.ImageError, match="cannot write in /proc") as e:
            call(proc, make_image(16, 16))
        msg = clear_message(e, proc)
        assert ".part" not in msg and "/proc/.x-" not in msg
    parent_is_file = tmp_path / "file.txt"
    parent_is_file.write_text("x")
    with pytest.raises(I.ImageError, match="is a file, not a folder"):
        W.check_writable(parent_is_file / "out.png")
    assert no_part_files(tmp_path) == []


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    out = tmp_path / "new" / "deeper" / "out.png"
    assert W.check_writable(out) == out
    assert out.parent.is_dir() and list(out.parent.iterdir()) == []
    with pytest.raises(I.ImageError, match="MiB free"):
        W.check_writable(out, need_bytes=1 << 62)
    with pytest.raises(I.ImageError, match="PNG only"):
        W.check_writable(tmp_path / "x.jpg", bit_depth=16)
    src = tmp_path / "content.png"
    W.save_image(src, make_image(16, 16))
    with pytest.raises(I.ImageError, match="refusing to overwrite an input"):
        W.check_writable(src, protect=[src])


@pytest.mark.parametrize("existed", [True, False])
def test_disk_full_leaves_previous_output_and_no_partial_file(tmp_path, monkeypatch, existed):
    out = tmp_path / "out.png"
    if existed:
        W.save_image(out, make_image(16, 16, seed=1))
    before = out.read_bytes() if existed else None

    def full_disk(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(I.ImageError, match="No space left on device") as e:
        W.save_image(out, make_image(16, 16, seed=2))
    msg = clear_message(e, out)
    assert ("previous file is unchanged" if existed else "nothing was written") in msg
    assert (out.read_bytes() if existed else out.exists()) == (before if existed else False)
    assert no_part_files(tmp_path) == []


def test_write_text_atomic_faults(tmp_path, monkeypatch):
    with pytest.raises(I.ImageError, match="is a folder"):
        W.write_text_atomic(tmp_path, "{}")
    with pytest.raises(I.ImageError, match="cannot write in /proc"):
        W.write_text_atomic("/proc/x.json", "{}")
    path = W.write_text_atomic(tmp_path / "s.json", '{"a": 1}')
    real_fdopen = os.fdopen

    def failing_fdopen(fd, *a, **k):
        f = real_fdopen(fd, *a, **k)
        f.write = lambda s: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
        return f

    monkeypatch.setattr(W.os, "fdopen", failing_fdopen)
    with pytest.raises(I.ImageError, match="previous file is unchanged"):
        W.write_text_atomic(path, '{"a": 2}')
    assert path.read_text() == '{"a": 1}' and no_part_files(tmp_path) == []


def test_sixteen_bit_png_output(tmp_path):
    image = make_image(16, 20, seed=4)
    image[0, 0] = (0.0, 1.0, 1000.75 / 65535)
    path = W.save_image(tmp_path / "deep.png", image, bit_depth=16)
    blob = path.read_bytes()
    # Decode by hand (filter 0 rows, one IDAT): every value is the 16-bit rounding.
    width, height, depth, colour = struct.unpack(">IIBB", blob[16:26])
    assert (width, height, depth, colour) == (20, 16, 16, 2)
    start = blob.index(b"IDAT") + 4
    length = struct.unpack(">I", blob[start - 8:start - 4])[0]
    rows = np.frombuffer(zlib.decompress(blob[start:start + length]), np.uint8).reshape(16, -1)
    assert (rows[:, 0] == 0).all()
    values = rows[:, 1:].copy().view(">u2").reshape(16, 20, 3)
    np.testing.assert_array_equal(values, W.to_uint16(image))
    assert tuple(values[0, 0]) == (0, 65535, 1001)
    assert np.abs(values / 65535.0 - image).max() <= 0.5 / 65535 + 1e-7
    # Pillow reads it (as 8 bits per channel) within one 8-bit step.
    assert np.abs(I.load_image(path) - image).max() <= STEP
