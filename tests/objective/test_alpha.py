"""Transparent content: the alpha channel survives byte for byte, and transparent pixels do
not drive the content loss (zero gradient there)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import nstjax
from nstjax.cli import run
from nstjax.io.image import ImageError, load_image
from nstjax.io.image_writing import save_image
from nstjax.objective import alpha as alpha_mod
from nstjax.objective.terms import compute_targets, objective_terms
from tests.conftest import make_image


def _alpha(h, w):
    """Every byte value, a transparent left part, a soft ramp, an opaque right part."""
    a = np.zeros((h, w), np.uint8)
    a[:, w // 2:] = 255
    a[:, w // 4: w // 2] = np.linspace(1, 254, w // 2 - w // 4).astype(np.uint8)
    a.flat[:256] = np.arange(256, dtype=np.uint8)
    return a


def _rgba_file(path, h=40, w=48, seed=1):
    rgb = (make_image(h, w, seed=seed) * 255).astype(np.uint8)
    a = _alpha(h, w)
    Image.fromarray(np.dstack([rgb, a])).save(path)
    return a


def test_load_and_save_keep_alpha_bytes(tmp_path):
    a = _rgba_file(tmp_path / "in.png")
    rgb, got = load_image(tmp_path / "in.png", alpha=True)
    np.testing.assert_array_equal(got, a)
    assert rgb.shape == a.shape + (3,) and rgb.dtype == np.float32
    # RGB is composited over white as before: a transparent pixel reads white.
    np.testing.assert_allclose(rgb[a == 0], 1.0)
    save_image(tmp_path / "out.png", rgb, alpha=got)
    back = np.asarray(Image.open(tmp_path / "out.png"))
    assert back.shape[-1] == 4
    np.testing.assert_array_equal(back[..., 3], a)
    # 16 bits: alpha × 257, so the top byte of each alpha sample is the input's byte.
    save_image(tmp_path / "out16.png", rgb, alpha=got, bit_depth=16)
    raw = (tmp_path / "out16.png").read_bytes()
    assert raw[24:26] == bytes([16, 6])            # IHDR: 16 bits, RGBA
    # Without alpha=True nothing changes, and a file without alpha gives None.
    assert load_image(tmp_path / "in.png").shape == a.shape + (3,)
    save_image(tmp_path / "rgb.png", rgb)
    assert load_image(tmp_path / "rgb.png", alpha=True)[1] is None


def test_alpha_refused_where_it_cannot_go(tmp_path):
    rgb = make_image(16, 16)
    with pytest.raises(ImageError, match="no alpha channel"):
        save_image(tmp_path / "o.jpg", rgb, alpha=np.zeros((16, 16), np.uint8))
    with pytest.raises(ImageError, match="alpha must be uint8"):
        save_image(tmp_path / "o.png", rgb, alpha=np.zeros((8, 16), np.uint8))
    with pytest.raises(ValueError, match="fully transparent"):
        alpha_mod.alpha_weights(np.zeros((16, 16), np.uint8))


@pytest.mark.parametrize("layer,far", [("relu1_1", 2), ("relu4_2", 64)])
def test_transparent_pixels_have_zero_content_gradient(tiny_vgg, layer, far):
    """The content term's gradient is exactly zero at transparent pixels farther than
    ``far`` from any opaque one: 2 for relu1_1 (a 3×3 conv, weights = α exactly), and for
    relu4_2 the 8×8 pooling block plus its receptive field (radius < 56 px)."""
    h, w, cut = 32, 160, 96
    a = np.zeros((h, w), np.uint8)
    a[:, cut:] = 255
    objective = nstjax.Objective(content_layers=(layer,), style_layers=(layer,))
    weights = nstjax.loss_weights(objective, style_weight=0.0)
    content = jnp.asarray(make_image(h, w, seed=3))
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (h, w, 3)).astype(np.float32))
    style = jnp.asarray(make_image(32, 32, seed=4))

    def grad(alpha):
        targets = compute_targets(tiny_vgg, content, [style], objective=objective)
        if alpha is not None:
            targets = alpha_mod.alpha_content_mask(targets, alpha, shape=(h, w),
                                                   content_layers=objective.content_layers)
        return np.asarray(jax.jit(jax.grad(lambda im, t: objective_terms(
            im, tiny_vgg, t, weights, jax.random.PRNGKey(0),
            objective=objective)["content"]))(x, targets))

    g_alpha, g_plain = grad(a), grad(None)
    transparent = np.abs(g_alpha[:, :cut - far]).max()
    assert transparent == 0.0
    # Without alpha the same pixels are driven (the test could fail), and with alpha the
    # opaque part still is.
    assert np.abs(g_plain[:, :cut - far]).max() > 1e-6
    assert np.abs(g_alpha[:, cut:]).max() > 1e-6


def test_alpha_weights_style_statistics():
    """Each style's pixel mask becomes α · m_s (all ones without masks)."""
    a = _alpha(20, 24)
    got = alpha_mod.alpha_style_masks(a, None, n_styles=2, shape=(20, 24))
    assert len(got) == 2
    np.testing.assert_allclose(np.asarray(got[0]), a / 255.0, atol=1e-7)
    m = np.linspace(0, 1, 24, dtype=np.float32)[None, :].repeat(20, 0)
    got = alpha_mod.alpha_style_masks(a, [m], n_styles=1, shape=(20, 24))
    np.testing.assert_allclose(np.asarray(got[0]), a / 255.0 * m, atol=1e-7)


def test_cli_colour_only_keeps_alpha_byte_for_byte(tmp_path, capsys):
    """The command's load-to-save path, fast (``--transfer-color-only`` needs no VGG)."""
    a = _rgba_file(tmp_path / "c.png", 40, 48)
    Image.fromarray((make_image(32, 32, seed=2) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    out = tmp_path / "o.png"
    code = run(["stylize", "--content", str(tmp_path / "c.png"), "--style",
                str(tmp_path / "s.png"), "--size", "48", "--transfer-color-only",
                "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(Image.open(out))[..., 3], a)
    # A JPEG output cannot hold it: a note, and an RGB file.
    code = run(["stylize", "--content", str(tmp_path / "c.png"), "--style",
                str(tmp_path / "s.png"), "--size", "48", "--transfer-color-only",
                "--output", str(tmp_path / "o.jpg")])
    assert code == 0 and "no alpha channel" in capsys.readouterr().err
    assert Image.open(tmp_path / "o.jpg").mode == "RGB"


@pytest.mark.real_weights
@pytest.mark.slow
def test_cli_keeps_alpha_byte_for_byte(tmp_path, real_vgg, capsys):
    """``nstjax stylize`` on an RGBA PNG at its own size: the output's alpha is the input's
    (slow: compiles the real VGG19; the fast test above covers the same load/save path)."""
    a = _rgba_file(tmp_path / "c.png", 40, 48)
    Image.fromarray((make_image(32, 32, seed=2) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    out = tmp_path / "o.png"
    code = run(["stylize", "--content", str(tmp_path / "c.png"), "--style",
                str(tmp_path / "s.png"), "--size", "48", "--iters", "2", "--no-progress",
                "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    img = np.asarray(Image.open(out))
    assert img.shape == (40, 48, 4)
    np.testing.assert_array_equal(img[..., 3], a)
    assert json.loads(out.with_name("o.png.json").read_text())["iterations"] == 2


def test_alpha_is_one_more_mask_of_the_targets(tiny_vgg):
    """``compute_targets(..., alpha=a)``: every style mask times α and the content weights
    times α's pyramid — the same targets as applying the two by hand."""
    content = jnp.asarray(make_image(24, 32, seed=1))
    styles = [jnp.asarray(make_image(20, 20, seed=2)), jnp.asarray(make_image(16, 28, seed=3))]
    a = np.zeros((24, 32), np.uint8)
    a[:, 8:] = 255
    a[4:10, 12:20] = 128
    m = np.ones((24, 32), np.float32)
    m[:, :16] = 0.25
    o = nstjax.Objective()
    got = compute_targets(tiny_vgg, content, styles, objective=o, style_masks=[m, 1 - m],
                          alpha=a)
    by_hand = alpha_mod.alpha_content_mask(
        compute_targets(tiny_vgg, content, styles, objective=o,
                        style_masks=alpha_mod.alpha_style_masks(a, [m, 1 - m], n_styles=2,
                                                                shape=(24, 32))),
        a, shape=(24, 32), content_layers=o.content_layers)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(by_hand)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
