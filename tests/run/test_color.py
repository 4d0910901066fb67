"""Colour control (Gatys et al. 2017 §5): luminance-only transfer keeps the content's chroma,
histogram matching makes the style's colour mean and covariance the content's."""

from __future__ import annotations

import numpy as np
import pytest

from nstjax.io.image import load_image
from nstjax.io.image_writing import save_image
from nstjax.run import color
from tests.conftest import make_image


def _stats(x):
    x = np.asarray(x, np.float64).reshape(-1, 3)
    return x.mean(0), np.cov(x.T, bias=True)


def _random_image(h, w, seed):
    """Correlated colours, so the covariance is full and far from the content's."""
    rng = np.random.default_rng(seed)
    mix = rng.uniform(-0.6, 0.6, (3, 3)) + np.eye(3)
    x = rng.uniform(0, 1, (h, w, 3)) @ mix.T
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float32)


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_colour_space_round_trip(space):
    x = _random_image(8, 9, 0)
    back = color.luma_chroma_to_rgb(color.rgb_to_luma_chroma(x, space=space), space=space)
    # float32 matrix and its inverse: a few ulps of values ≤ 1.
    np.testing.assert_allclose(back, x, atol=2e-6)
    # Y of grey is the grey level (rows of the matrix sum to 1 for Y, 0 for chroma).
    ycc = color.rgb_to_luma_chroma(np.full((2, 2, 3), 0.3, np.float32), space=space)
    np.testing.assert_allclose(ycc, np.broadcast_to([0.3, 0, 0], (2, 2, 3)), atol=1e-6)


@pytest.mark.parametrize("method", color.MATCH_METHODS)
def test_histogram_matching_equals_content_statistics(method):
    content = make_image(24, 32, seed=1)
    style = _random_image(40, 30, 2)
    out = color.match_color(style, content, method=method)
    mu_o, cov_o = _stats(out)
    mu_c, cov_c = _stats(content)
    # float32 sums of ~1e3 values ≤ 1 and a 3×3 factorisation: 1e-5 absolute on entries of
    # ~0.1 (1e-4 relative); the relative ridge of 1e-6 is far below that.
    np.testing.assert_allclose(mu_o, mu_c, atol=1e-5)
    np.testing.assert_allclose(cov_o, cov_c, atol=1e-5)
    # It really moved the statistics (the test could fail).
    assert np.abs(_stats(style)[1] - cov_c).max() > 1e-2


def test_histogram_matching_forms_differ_but_both_match():
    """Cholesky and the symmetric (image analogies) map are different linear maps."""
    content, style = make_image(16, 16, seed=3), _random_image(16, 16, 4)
    a_chol, _ = color.color_transform(style, content, method="cholesky")
    a_eig, _ = color.color_transform(style, content, method="eigen")
    assert np.abs(np.asarray(a_chol) - np.asarray(a_eig)).max() > 1e-3
    # Cholesky's map of lower-triangular factors is lower triangular.
    np.testing.assert_allclose(np.triu(np.asarray(a_chol), 1), 0.0, atol=1e-6)


def test_transfer_colour_only_is_the_reverse_map():
    content, style = make_image(20, 20, seed=5), _random_image(30, 20, 6)
    out = color.match_color(content, style)
    np.testing.assert_allclose(_stats(out)[0], _stats(style)[0], atol=1e-5)
    np.testing.assert_allclose(_stats(out)[1], _stats(style)[1], atol=1e-5)


@pytest.mark.parametrize("space", color.COLOR_SPACES)
def test_luminance_mode_keeps_content_chroma_exactly(space):
    content = _random_image(24, 24, 7)
    # Any luminance, including values far outside [0, 1]: clamping must not shift a hue.
    luma = np.random.default_rng(8).uniform(-0.5, 1.5, (24, 24)).astype(np.float32)
    out = np.asarray(color.combine_luminance(luma, content, space=space))
    ycc_out = np.asarray(color.rgb_to_luma_chroma(out, space=space))
    ycc_c = np.asarray(color.rgb_to_luma_chroma(content, space=space))
    # float32: two 3×3 products of values up to 1.5, and a final clip of the ≤ 1e-5 they
    # can overshoot the cube by: chroma equal to 1e-5.
    np.testing.assert_allclose(ycc_out[..., 1:], ycc_c[..., 1:], atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Where the luminance was admissible it is kept.
    ok = (luma > 0.2) & (luma < 0.8) & (np.abs(ycc_c[..., 1:]).max(-1) < 0.05)
    assert ok.any()
    np.testing.assert_allclose(ycc_out[..., 0][ok], luma[ok], atol=1e-5)


def test_luminance_mode_end_to_end_8bit(tmp_path):
    """prepare -> a stand-in transfer -> finish -> 8-bit file: chroma within rounding.

    Each RGB channel of an 8-bit file is off by at most 0.5/255, so a chroma row ``r`` of
    the YIQ matrix changes by at most ``Σ|r_k| · 0.5/255`` (I: 1.19 → 2.34e-3, Q: 1.05 →
    2.05e-3); the content is re-read from its own 8-bit file so it has no rounding of its
    own.
    """
    save_image(tmp_path / "c.png", make_image(32, 40, seed=9))
    content = load_image(tmp_path / "c.png")
    style = _random_image(30, 30, 10)
    c2, s2 = color.prepare_inputs(content, [style], preserve="luminance")
    c2 = np.asarray(c2)
    assert np.allclose(c2[..., 0], c2[..., 1]) and np.allclose(c2[..., 1], c2[..., 2])
    # The style's luminance now has the content's mean and std (§5.2).
    ls, lc = np.asarray(s2[0])[..., 0], np.asarray(color.luminance(content))
    np.testing.assert_allclose([ls.mean(), ls.std()], [lc.mean(), lc.std()], atol=1e-5)
    fake_result = np.clip(c2 + 0.3 * np.sin(np.arange(40) / 3.0)[None, :, None], 0, 1)
    out = color.finish_output(fake_result, content, preserve="luminance")
    save_image(tmp_path / "o.png", out)
    back = load_image(tmp_path / "o.png")
    m = np.abs(np.asarray(color._RGB_TO["yiq"]))[1:].sum(1) * 0.5 / 255
    d = np.abs(np.asarray(color.rgb_to_luma_chroma(back))
               - np.asarray(color.rgb_to_luma_chroma(content)))[..., 1:]
    assert (d.reshape(-1, 2).max(0) <= m + 1e-6).all(), (d.reshape(-1, 2).max(0), m)
    # The luminance did change (the test could fail).
    assert np.abs(np.asarray(color.luminance(back)) - lc).max() > 0.1


def test_histogram_mode_prepares_matched_styles():
    content, style = make_image(16, 20, seed=11), _random_image(18, 18, 12)
    free = color.match_color(style, content)          # the content's moments exactly
    np.testing.assert_allclose(_stats(free)[1], _stats(content)[1], atol=1e-5)
    c2, (s2,) = color.prepare_inputs(content, [style], preserve="histogram")
    assert c2 is content
    np.testing.assert_allclose(np.asarray(s2), np.clip(np.asarray(free), 0.0, 1.0), atol=1e-6)
    assert float(np.min(free)) < 0.0 or float(np.max(free)) > 1.0     # the clip mattered
    assert color.finish_output(s2, content, preserve="histogram") is s2


def test_bad_names_refused():
    with pytest.raises(ValueError, match="preserve-color"):
        color.prepare_inputs(np.zeros((4, 4, 3)), [], preserve="hue")
    with pytest.raises(ValueError, match="colour space"):
        color.luminance(np.zeros((4, 4, 3)), space="lab")
    with pytest.raises(ValueError, match="method"):
        color.match_color(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), method="svd")


def _files(tmp_path):
    save_image(tmp_path / "c.png", make_image(30, 40, seed=13))
    save_image(tmp_path / "s.png", _random_image(24, 24, 14))
    return str(tmp_path / "c.png"), str(tmp_path / "s.png")


def test_cli_transfer_colour_only(tmp_path, capsys):
    """``--transfer-color-only``: the content mapped to the style's colour mean and
    covariance and clipped to [0, 1], to 8-bit rounding (half a level, 2e-3)."""
    from nstjax.cli import run
    c, s = _files(tmp_path)
    out = tmp_path / "o.png"
    assert run(["stylize", "--content", c, "--style", s, "--size", "40",
                "--transfer-color-only", "--output", str(out)]) == 0, capsys.readouterr().err
    got, style, content = load_image(out), load_image(s, size=40), load_image(c)
    want = np.asarray(color.match_color(content, style, clip=True))
    assert np.abs(got - want).max() <= 0.5 / 255 + 1e-6
    assert np.abs(_stats(content)[1] - _stats(style)[1]).max() > 2e-2   # it did recolour


@pytest.mark.parametrize("extra,message", [
    (["--transfer-color-only", "--preserve-color", "luminance"], "opposites"),
    (["--preserve-color", "hue"], "invalid choice"),
    (["--style-scale", "0.5", "--style-size", "32"], "give one"),
    (["--style-scale", "-1"], "positive"),
    (["--style-scale", "0.01"], "below"),
    (["--bit-depth", "12"], "invalid choice"),
])
def test_cli_colour_and_scale_flags_refused(tmp_path, capsys, extra, message):
    from nstjax.cli import run
    c, s = _files(tmp_path)
    code = run(["stylize", "--content", c, "--style", s, "--output",
                str(tmp_path / "o.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_style_scale_is_relative_to_the_output():
    """jcjohnson/neural-style: style_size = ⌈style_scale × image_size⌉."""
    import argparse

    from nstjax.cli.common import style_size_of
    ns = argparse.Namespace(style_size=None, style_scale=0.5)
    assert style_size_of(ns, 512) == 256
    assert style_size_of(argparse.Namespace(style_size=None, style_scale=0.33), 100) == 33
    assert style_size_of(argparse.Namespace(style_size=None, style_scale=0.335), 100) == 34
    assert style_size_of(argparse.Namespace(style_size=200, style_scale=None), 512) == 200
    assert style_size_of(argparse.Namespace(style_size=None, style_scale=None), 512) == 512


@pytest.mark.parametrize("preserve", ["luminance", "histogram"])
def test_library_preserves_colour_as_the_two_steps_do(tiny_vgg, preserve):
    """``nstjax.stylize(..., preserve_color=...)`` is ``prepare_inputs`` → ``stylize`` →
    ``finish_output`` (Gatys et al. 2017 §5), snapshots included; with ``"luminance"`` the
    result's chroma is the content's (the same as the two steps: float32 round-off only)."""
    import jax
    import jax.numpy as jnp

    import nstjax
    content = jnp.asarray(make_image(32, 40, seed=1))
    style = jnp.asarray(make_image(36, 36, seed=5))
    kw = dict(key=jax.random.PRNGKey(0), solver=nstjax.Solver(optimizer="adam", max_iter=4))
    shots = []
    got = nstjax.stylize(tiny_vgg, content, style, preserve_color=preserve,
                         callbacks=nstjax.Callbacks(snapshot=lambda i, x: shots.append(x),
                                                    snapshot_every=4), **kw)
    c_run, s_run = color.prepare_inputs(content, [style], preserve=preserve)
    raw = nstjax.stylize(tiny_vgg, c_run, s_run, **kw)
    want = color.finish_output(raw.image, content, preserve=preserve)
    np.testing.assert_allclose(np.asarray(got.image), np.asarray(want), atol=1e-6)
    np.testing.assert_allclose(np.asarray(shots[-1]), np.asarray(want), atol=1e-6)
    if preserve == "luminance":
        chroma = lambda im: np.asarray(color.rgb_to_luma_chroma(im))[..., 1:]  # noqa: E731
        inside = np.all((np.asarray(got.image) > 0.02) & (np.asarray(got.image) < 0.98), -1)
        np.testing.assert_allclose(chroma(got.image)[inside], chroma(content)[inside],
                                   atol=1e-5)
