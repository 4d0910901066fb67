"""Tiled stylisation: tile layout, feathered blend, objective vs untiled, no seams."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.large.tile_layout import (
    blend_weights,
    core_weights,
    tile_layout,
    tile_starts,
)
from nstjax.large.tiling import full_targets, stylize_tiled, tile_grams, tile_problem
from nstjax.losses import style_targets
from nstjax.objective.terms import total_loss
from tests.conftest import make_image


def test_tile_starts_cover_with_overlap():
    for length, tile, overlap in [(100, 48, 16), (6000, 1024, 128), (4000, 1024, 128),
                                  (48, 48, 8), (30, 48, 8)]:
        starts = tile_starts(length, tile, overlap)
        size = min(tile, length)
        assert starts[0] == 0 and starts[-1] + size == length
        gaps = np.diff(starts)
        assert np.all(gaps > 0) and np.all(size - gaps >= overlap - 8), (length, starts)


def test_blend_weights_ramp_at_interior_edges_only():
    w = blend_weights(16, 40, 90, 12)
    assert w[0] < 0.1 and w[-1] < 0.1 and w[20] == 1.0
    np.testing.assert_array_equal(blend_weights(0, 40, 40, 12), np.ones(40))   # no neighbour
    np.testing.assert_allclose(w[:12] + w[:12][::-1], 1.0, atol=1e-6)  # ramps are complementary


def _border_and_inside_steps(image, starts, size):
    """Mean |difference| between neighbouring columns, at the tiles' edges and elsewhere."""
    d = np.abs(np.diff(np.asarray(image), axis=1)).mean(axis=(0, 2))      # [W - 1]
    edges = {s - 1 for s in starts[1:]} | {s + size - 1 for s in starts[:-1]}
    edges = sorted(e for e in edges if 0 <= e < d.size)
    inside = np.delete(d, edges)
    return d[edges], inside


def test_layout_windows_hold_their_cores_and_cores_cover_the_image():
    for shape, tile, overlap, margin in [((96, 192), 128, 32, 16), ((4000, 6000), 1024, 32, 64),
                                         ((70, 300), 96, 16, 16), ((50, 60), 96, 16, 16)]:
        layout = tile_layout(shape, tile, overlap, margin)
        (ch, cw), (wh, ww) = layout.core, layout.window
        covered = np.zeros(shape, bool)
        for (y0, x0), (wy, wx) in zip(layout.cores, layout.windows):
            assert 0 <= wy <= y0 and y0 + ch <= wy + wh <= shape[0]
            assert 0 <= wx <= x0 and x0 + cw <= wx + ww <= shape[1]
            covered[y0:y0 + ch, x0:x0 + cw] = True
        assert covered.all() and wh == min(tile, shape[0]) and ww == min(tile, shape[1])


def test_core_weights_are_a_partition_of_unity():
    """Over all tiles, every pixel's blend weights sum to 1 (to 1e-6), and the window maps
    are 0 over the context margin."""
    shape, overlap = (96, 300), 16
    layout = tile_layout(shape, 96, overlap, 16)
    total = np.zeros(shape, np.float32)
    for i, ((y0, x0), (wy, wx)) in enumerate(zip(layout.cores, layout.windows)):
        core, window = core_weights(layout, i, shape, overlap)
        total[y0:y0 + core.shape[0], x0:x0 + core.shape[1]] += core
        assert window.sum() == pytest.approx(core.sum(), rel=1e-6)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def _problem(tiny_vgg, shape=(96, 192), layers=("relu1_1", "relu2_1", "relu3_1")):
    content = jnp.asarray(make_image(*shape, seed=1))
    # as many positions as the content at every layer (128·144 = 96·192): the tiles'
    # rescaled Gram targets are then the untiled run's own; noise: far from the content
    style = jnp.asarray(np.random.default_rng(2).uniform(size=(128, 144, 3)), jnp.float32)
    objective = nstjax.Objective(style_layers=layers, content_layers=("relu3_1",),
                                 content_loss="sum")   # the tolerances below were set on it
    weights = nstjax.loss_weights(objective, style_weight=1e3)
    return content, style, objective, weights


def test_tile_grams_add_up_to_the_whole_images_gram(tiny_vgg):
    """Σ_t Σ_p w_t(p) f_p f_pᵀ = F Fᵀ (mathur2017 eq. 2) when the margins hold the receptive
    field (relu2_1 here: 10 px < 32): tiles' shares from their windows, the Gram from the
    whole image's features; to 1e-4 relative."""
    content, _, objective, _ = _problem(tiny_vgg, layers=("relu1_1", "relu2_1"))
    x = jnp.asarray(make_image(96, 192, seed=7))
    layout = tile_layout((96, 192), 128, 16, 32)
    assert len(layout.cores) == 4
    shares = [tile_grams(tiny_vgg, x, layout, i, objective=objective, overlap=16)
              for i in range(len(layout.cores))]
    features = nstjax.extract_features(tiny_vgg, x, objective.style_layers)
    for layer in objective.style_layers:
        f = np.asarray(features[layer], np.float64).reshape(-1, features[layer].shape[-1])
        whole = f.T @ f
        total = sum(np.asarray(s[layer], np.float64) for s in shares)
        np.testing.assert_allclose(total, whole, rtol=1e-4, atol=1e-4 * np.abs(whole).max())


def test_a_tiles_style_term_is_the_whole_images_and_shares_add_up_the_content(tiny_vgg):
    """Gram mode: with the rest of the image's Gram held (the tiles' shares less the
    window's own Gram), a tile's style term is the whole image's (mathur2017 eq. 3-4).
    Matching mode (no rest): the tiles' content terms, weighted by a partition of unity,
    add up to the whole image's (eq. 1).  Both to 1e-4 relative, margins 32 px."""
    content, style, objective, weights = _problem(tiny_vgg)
    key = jax.random.PRNGKey(0)
    x = jnp.asarray(make_image(96, 192, seed=7))
    targets = full_targets(tiny_vgg, content, style, objective=objective)
    whole = nstjax.objective_terms(x, tiny_vgg, targets, weights, key, objective=objective)
    layout = tile_layout((96, 192), 128, 16, 32)
    style_t = (style_targets(objective.style_losses,
                             nstjax.extract_features(tiny_vgg, style, objective.style_layers)),)
    shares = [tile_grams(tiny_vgg, x, layout, i, objective=objective, overlap=16)
              for i in range(len(layout.cores))]
    content_sum = 0.0
    (wh, ww) = layout.window
    for i, (wy, wx) in enumerate(layout.windows):
        window = x[wy:wy + wh, wx:wx + ww]
        f = nstjax.extract_features(tiny_vgg, window, objective.style_layers)
        rest = ({l: sum(s[l] for s in shares) - nstjax.gram_matrix(f[l])
                 for l in objective.style_layers},)
        t, w, _ = tile_problem(tiny_vgg, content, style_t, layout, i, objective=objective,
                               weights=weights, overlap=16, rest_grams=rest)
        terms = nstjax.objective_terms(window, tiny_vgg, t, w, key, objective=objective)
        assert float(terms["style"]) == pytest.approx(float(whole["style"]), rel=1e-4)
        t, w, _ = tile_problem(tiny_vgg, content, style_t, layout, i, objective=objective,
                               weights=weights, overlap=16)
        content_sum += float(nstjax.objective_terms(window, tiny_vgg, t, w, key,
                                                    objective=objective)["content"])
    assert content_sum == pytest.approx(float(whole["content"]), rel=1e-4)


def test_tiled_objective_and_no_seam(tiny_vgg):
    """96×192 content in three 128-pixel windows (cores 96 px, margin 16, overlap ≥ 32),
    a 64-pixel coarse solve first, 30 Adam steps per solve and for the untiled run.  The
    blended image's whole-image objective is within 2% of the untiled run's (measured
    0.4% above; 0.3% with 50 L-BFGS iterations each, and a second pass over the tiles
    beats the untiled run) and well below the content image's; the column steps at the tiles' edges are no larger
    than the largest step inside the tiles."""
    content, style, objective, weights = _problem(tiny_vgg)
    key = jax.random.PRNGKey(0)
    solver = nstjax.Solver(optimizer="adam", max_iter=30, lr=0.03)
    tiled = stylize_tiled(tiny_vgg, content, style, key=key, objective=objective,
                          weights=weights, solver=solver, tile=128, overlap=32, margin=16,
                          coarse=64, match="whole")
    tiles = [s for s in tiled.stages if s.core]
    assert len(tiles) == 3 and {s.core[2:] for s in tiles} == {(96, 96)}
    assert int(tiled.status) != nstjax.Status.INTERRUPTED
    assert tiled.stages[0].name == "coarse 64×32" and not tiled.stages[0].core
    plain = nstjax.stylize(tiny_vgg, content, style, key=key, objective=objective,
                           weights=weights, solver=solver)
    targets = full_targets(tiny_vgg, content, style, objective=objective)

    def full(x):
        return float(total_loss(x, tiny_vgg, targets, weights, key, objective=objective))

    assert full(tiled.image) <= 1.02 * full(plain.image), (full(tiled.image),
                                                           full(plain.image))
    assert full(tiled.image) < 0.75 * full(content)        # it did stylise
    xs = sorted({s.core[1] for s in tiles})
    at_edges, inside = _border_and_inside_steps(tiled.image, xs, 96)
    assert at_edges.max() <= inside.max(), (at_edges, inside.max())


def test_weights_at_a_smaller_size_scale_the_style_weight_by_the_area(tiny_vgg):
    """``weights_at=96`` on a 96×192 image is the same solve as the style weight times
    (96·192)/(48·96) = 4 (the content loss sums over pixels, mathur2017 eq. 1): identical
    images."""
    content, style, objective, weights = _problem(tiny_vgg)
    kw = dict(key=jax.random.PRNGKey(0), objective=objective, tile=128, overlap=32,
              margin=16, coarse=64, solver=nstjax.Solver(optimizer="adam", max_iter=2))
    at = stylize_tiled(tiny_vgg, content, style, weights=weights, weights_at=96, **kw)
    scaled = stylize_tiled(tiny_vgg, content, style, **kw,
                           weights=weights._replace(style_weight=weights.style_weight * 4))
    np.testing.assert_allclose(np.asarray(at.image), np.asarray(scaled.image), atol=1e-6)
    plain = stylize_tiled(tiny_vgg, content, style, weights=weights, **kw)
    assert np.abs(np.asarray(plain.image) - np.asarray(at.image)).max() > 1e-3


def test_a_stop_request_keeps_the_solved_tiles_and_the_start_elsewhere(tiny_vgg):
    content, style, objective, weights = _problem(tiny_vgg)
    solver = nstjax.Solver(optimizer="adam", max_iter=3, lr=0.03)
    seen = []
    callbacks = nstjax.Callbacks(snapshot=lambda i, x: seen.append((i, x)),
                                 should_stop=lambda: len(seen) >= 1)
    result = stylize_tiled(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                           objective=objective, weights=weights, solver=solver, tile=128,
                           overlap=32, margin=16, coarse=0, callbacks=callbacks)
    assert int(result.status) == nstjax.Status.INTERRUPTED
    assert [s.name for s in result.stages] == ["tile 1/3"] and len(seen) == 1
    assert int(result.n_iter) == 3 and result.history.shape == (3,)
    assert seen[0][0] == 3 and seen[0][1].shape == (96, 192, 3)
    image = np.asarray(result.image)
    np.testing.assert_array_equal(image, seen[0][1])
    # the last core, beyond the first tile's core, is still the start (the content)
    np.testing.assert_allclose(image[:, -32:], np.asarray(content)[:, -32:], atol=1e-6)


def test_a_thin_image_tiles_along_its_long_axis_only(tiny_vgg):
    """A 16-pixel-high strip: one window high, so the overlap (32, above its height) applies
    only along the width, where the tiles are."""
    content = jnp.asarray(make_image(16, 200, seed=4))
    result = stylize_tiled(tiny_vgg, content, make_image(32, 32, seed=5),
                           key=jax.random.PRNGKey(0), solver=nstjax.Solver("adam", 1),
                           tile=96, overlap=32, margin=16, coarse=0)
    assert result.image.shape == (16, 200, 3)
    assert [s.window[0] for s in result.stages] == [0] * len(result.stages) > []


def test_bad_tile_settings_are_refused(tiny_vgg):
    content = jnp.asarray(make_image(64, 64, seed=1))
    with pytest.raises(ValueError, match="tile must be at least"):
        stylize_tiled(tiny_vgg, content, content, key=jax.random.PRNGKey(0), tile=8)
    with pytest.raises(ValueError, match="overlap"):
        stylize_tiled(tiny_vgg, content, content, key=jax.random.PRNGKey(0), tile=48,
                      overlap=48)
    with pytest.raises(ValueError, match="margin"):
        stylize_tiled(tiny_vgg, make_image(200, 200), content, key=jax.random.PRNGKey(0),
                      tile=64, margin=24)


# ------------------------------------------------------------------------ command line


@pytest.fixture
def big_inputs(tmp_path):
    from PIL import Image
    c, s = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray((make_image(96, 176, seed=1) * 255).astype(np.uint8)).save(c)
    Image.fromarray((make_image(64, 64, seed=2) * 255).astype(np.uint8)).save(s)
    return c, s


def test_cli_tiles_write_the_image_and_a_sidecar(big_inputs, tmp_path, tiny_vgg, monkeypatch,
                                                 capsys):
    import json

    from PIL import Image

    from nstjax.cli import run
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    c, s = big_inputs
    out = tmp_path / "poster.png"
    code = run(["stylize", "--content", str(c), "--style", str(s), "--output", str(out),
                "--size", "176", "--tile", "96", "--tile-margin", "16", "--tile-overlap", "16",
                "--iters", "2", "--tile-iters", "1", "--no-progress", "--save-every", "1",
                "--style-layers", "relu1_1,relu2_1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert np.asarray(Image.open(out)).shape == (96, 176, 3)
    meta = json.loads((tmp_path / "poster.png.json").read_text())
    tiles = meta["tiles"]
    assert tiles["window"] == [96, 96] and tiles["count"] == tiles["solved"] >= 3
    assert tiles["match"] == "local" and tiles["whole_image_gram"] is False
    assert meta["status"] == "done"
    assert meta["solver"]["max_iter"] == 2 and meta["tile_solver"]["max_iter"] == 1
    assert len(meta["snapshots"]) == tiles["count"] and all(Path(p).exists() for p in meta["snapshots"])


def test_cli_tile_as_big_as_the_image_solves_it_whole(big_inputs, tmp_path, tiny_vgg,
                                                      monkeypatch, capsys):
    import json

    from nstjax.cli import run
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    c, s = big_inputs
    out = tmp_path / "o.png"
    code = run(["stylize", "--content", str(c), "--style", str(s), "--output", str(out),
                "--size", "176", "--tile", "192", "--iters", "1", "--no-progress",
                "--style-layers", "relu1_1"])
    err = capsys.readouterr().err
    assert code == 0 and "solving it whole" in err, err
    assert "tiles" not in json.loads((tmp_path / "o.png.json").read_text())


@pytest.mark.parametrize("extra, says", [
    (["--tile", "50"], "multiple of 16"),
    (["--tile", "big"], "a number of pixels or 'auto'"),
    (["--tile-margin", "16"], "needs --tile"),
    (["--tile-iters", "5"], "needs --tile"),
    (["--tile", "256", "--tile-iters", "0"], "at least 1"),
    (["--tile", "96", "--tile-margin", "24"], "multiple of 16"),
    (["--tile", "96", "--tile-margin", "48"], "leaves no room"),
    (["--tile", "256", "--min-size", "64"], "does not combine with --min-size"),
])
def test_cli_bad_tile_flags_are_one_line(big_inputs, tmp_path, capsys, extra, says):
    from nstjax.cli import run
    c, s = big_inputs
    code = run(["stylize", "--content", str(c), "--style", str(s), "--output",
                str(tmp_path / "o.png"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_cli_tile_auto_tiles_only_beyond_memory(tmp_path, tiny_vgg, monkeypatch, capsys):
    """With 0.6 GiB available (as the memory check sees it), a 512×384 run does not fit
    whole even with checkpointing: ``--tile auto`` picks the largest window that fits and
    says so; with 1.1 GiB it fits whole and no tiles are used (the check compiles the real
    VGG19's program on abstract arguments, so this takes ~25 s)."""
    import json

    from PIL import Image

    from nstjax.cli import run
    from nstjax.run import memory
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray((make_image(384, 512, seed=1) * 255).astype(np.uint8)).save(c)
    Image.fromarray((make_image(128, 128, seed=2) * 255).astype(np.uint8)).save(s)
    for gib, tiled in ((0.6, True), (1.1, False)):
        monkeypatch.setattr(memory, "available_bytes", lambda gib=gib: int(gib * 2**30))
        out = tmp_path / f"o{gib}.png"
        code = run(["stylize", "--content", str(c), "--style", str(s), "--output", str(out),
                    "--size", "512", "--tile", "auto", "--iters", "1", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 0, err
        meta = json.loads(out.with_name(out.name + ".json").read_text())
        assert ("tiles" in meta) == tiled and ("pixel tiles" in err) == tiled, err
        if tiled:
            assert 64 <= meta["tiles"]["window"][0] < 512 and meta["tiles"]["count"] >= 2


def test_cli_tiles_load_the_style_at_the_size_the_memory_check_chose(tmp_path, tiny_vgg,
                                                                     monkeypatch, capsys):
    """A tiled run's style follows --size; when that style's forward pass would not fit,
    the memory check lowers its size (with a note), and the style is loaded at that size.
    The solve itself is replaced: only the decision and the loaded inputs are checked (the
    check compiles the real VGG19's program for one 96-pixel tile on abstract arguments)."""
    import re

    from PIL import Image

    from nstjax.cli import run, tiles
    from nstjax.run import memory
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(0.9 * 2**30))
    seen = {}

    def fake_tiles_run(args, out, session, *, styles, **kw):
        seen["style"] = styles[0].shape
        return 0
    monkeypatch.setattr(tiles, "run", fake_tiles_run)
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray((make_image(384, 512, seed=1) * 255).astype(np.uint8)).save(c)
    Image.fromarray((make_image(512, 512, seed=2) * 255).astype(np.uint8)).save(s)
    code = run(["stylize", "--content", str(c), "--style", str(s), "--output",
                str(tmp_path / "o.png"), "--size", "512", "--tile", "96", "--iters", "1",
                "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    chosen = re.search(r"using --style-size (\d+)", err)
    assert chosen, err
    assert 64 <= int(chosen.group(1)) < 512
    assert max(seen["style"][:2]) == int(chosen.group(1)), (seen, err)
