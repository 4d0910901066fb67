"""``nstjax.score`` and ``nstjax score``: fixed points, closed forms, an ordered blend, the CLI.

Tolerances (float32 features, float64 ratios):

* the content scores exactly 1 / 0 / 1: its distances are the denominators, computed by the
  same compiled function on the same input, so the ratios are 1.0 exactly (checked to 1e-12);
* the style itself scores 0: SW and Gram to 1e-6 (identical features give identical sorted
  projections and Grams), mean/cov to 1e-4 (an eigendecomposition of the same float32
  covariance, in float64: round-off of order 1e-6 relative, measured 2e-6);
* the style at ANOTHER size ([S|S] against S, a network whose features are exactly S's
  twice) scores 0: SW to 1e-6 (the quantile matching is exact: every sample duplicated
  gives the same quantile function), Gram and mean/cov to 1e-4 (float32 sums over twice
  the positions round differently; measured < 2.2e-5);
* SW against an independent NumPy computation: rtol 1e-5 (float32 projections and sums).
"""

from __future__ import annotations

import importlib
import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image
from PIL import Image

import nstjax
from nstjax.cli import run

S = importlib.import_module("nstjax.evaluate.score")    # the module (the name is the function)
MEASURES = S.STYLE_MEASURES


def _centre_tap(vgg):
    """The tiny VGG with every 3×3 kernel cut to its centre tap (×3 to keep the scale).

    Each feature then depends only on the pixels of its own pooling block (16×16 at
    relu5_1), so the features of ``[A | B]`` (two images side by side, widths multiples
    of 16) are exactly A's and B's features together: the distribution is the 50/50 mixture.
    """
    centre = np.zeros((3, 3, 1, 1), np.float32)
    centre[1, 1] = 3.0
    return vgg._replace(params={k: {"kernel": v["kernel"] * centre, "bias": jnp.abs(v["bias"])}
                                for k, v in vgg.params.items()})


@pytest.fixture(scope="module")
def pair():
    return make_image(48, 32, seed=1), make_image(48, 32, seed=2)


# ------------------------------------------------------------------ fixed points


def test_content_scores_one_and_style_scores_zero(tiny_vgg, pair):
    c, s = pair
    at_content, at_style = nstjax.score(tiny_vgg, c, s, [c, s])
    for m in MEASURES:
        assert at_content.style[m] == pytest.approx(1.0, abs=1e-12), m
        assert all(v == pytest.approx(1.0, abs=1e-12)
                   for v in at_content.style_per_layer[m].values()), m
    assert at_content.content_error == 0.0
    assert at_content.ssim == pytest.approx(1.0, abs=1e-9)
    assert at_style.style["sliced_wasserstein"] == pytest.approx(0.0, abs=1e-6)
    assert at_style.style["gram"] == pytest.approx(0.0, abs=1e-6)
    assert at_style.style["mean_cov"] == pytest.approx(0.0, abs=1e-4)
    assert at_style.content_error > 0.1 and at_style.ssim < 0.5
    assert not at_content.resized and at_content.shape == (48, 32)


def test_style_at_another_size_scores_zero(tiny_vgg, pair):
    """Quantile matching makes SW size-free: [S|S] (twice S's positions) against S is 0."""
    vgg = _centre_tap(tiny_vgg)
    c, s = pair
    (r,) = nstjax.score(vgg, np.concatenate([c, c], 1), s, [np.concatenate([s, s], 1)])
    assert r.style["sliced_wasserstein"] == pytest.approx(0.0, abs=1e-6)
    assert r.style["gram"] == pytest.approx(0.0, abs=1e-4)
    assert r.style["mean_cov"] == pytest.approx(0.0, abs=1e-4)


# ------------------------------------------------------------------ closed forms


def _numpy_sw(x, y, theta):
    """Sliced W2 by brute force: each of the n x-samples repeated m times and each of the m
    y-samples n times gives two equal-size samples of the same distributions, whose W2² is
    the mean squared difference of the sorted values."""
    px, py = x @ theta, y @ theta
    n, m = len(x), len(y)
    a = np.sort(np.repeat(px, m, axis=0), axis=0)
    b = np.sort(np.repeat(py, n, axis=0), axis=0)
    return np.sqrt(np.mean((a - b) ** 2))


def test_sliced_wasserstein_matches_numpy():
    rng = np.random.default_rng(0)
    fx = rng.gamma(2.0, size=(5, 7, 6)).astype(np.float32)     # 35 positions
    fy = rng.normal(1.0, 2.0, size=(4, 6, 6)).astype(np.float32)  # 24 positions
    theta = S.projections(6, "relu3_1")
    assert theta.shape == (6, S.N_PROJECTIONS)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(theta, S.projections(6, "relu3_1"))      # fixed
    assert not np.allclose(theta, S.projections(6, "relu4_1"))             # per layer
    a, b = S._layer_stats(jnp.asarray(fx), "relu3_1"), S._layer_stats(jnp.asarray(fy), "relu3_1")
    sw, gram = np.asarray(S._layer_distances(a, b), np.float64)
    x, y = fx.reshape(-1, 6).astype(np.float64), fy.reshape(-1, 6).astype(np.float64)
    np.testing.assert_allclose(sw, _numpy_sw(x, y, theta.astype(np.float64)), rtol=1e-5)
    gx, gy = x.T @ x / len(x), y.T @ y / len(y)
    np.testing.assert_allclose(gram, np.linalg.norm(gx - gy), rtol=1e-5)


def test_quantile_matching_is_exact_under_duplication():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(6, 5, 4)).astype(np.float32)
    twice = np.concatenate([f, f], axis=0)
    a, b = S._layer_stats(jnp.asarray(twice), "relu2_1"), S._layer_stats(jnp.asarray(f),
                                                                          "relu2_1")
    assert float(S._layer_distances(a, b)[0]) == 0.0
    width, i, j = S._quantile_coupling(7, 3)
    assert width.sum() == pytest.approx(1.0, abs=1e-6) and (width > 0).all()
    assert i.max() == 6 and j.max() == 2


def test_gaussian_w2_closed_form():
    """Commuting (diagonal) covariances: W2² = ‖Δμ‖² + Σ (√a − √b)² (Dowson & Landau)."""
    rng = np.random.default_rng(2)
    ma, mb = rng.normal(size=5), rng.normal(size=5)
    va, vb = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))                  # a common rotation
    want = np.sqrt(np.sum((ma - mb) ** 2) + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2))
    got = S.gaussian_w2(q @ ma, q @ np.diag(va) @ q.T, q @ mb, q @ np.diag(vb) @ q.T)
    assert got == pytest.approx(want, rel=1e-10)
    cov = q @ np.diag(va) @ q.T
    assert S.gaussian_w2(ma, cov, ma, cov) == pytest.approx(0.0, abs=1e-7)


# ------------------------------------------------------------------ ordered blends


def _mixture_distances(x, y, copies_x, copies_y):
    """SW, Gram, mean/cov distances of the exact mixture (x repeated, y repeated) to y."""
    mix = np.concatenate([x] * copies_x + [y] * copies_y, axis=0)
    a, b = S._layer_stats(jnp.asarray(mix[:, None]), "relu3_1"), \
        S._layer_stats(jnp.asarray(y[:, None]), "relu3_1")
    sw, gram = np.asarray(S._layer_distances(a, b), np.float64)
    return np.array([sw, gram, S.gaussian_w2(a["mean"], a["cov"], b["mean"], b["cov"])])


def test_mixtures_move_monotonically_to_the_style():
    """Exact empirical mixtures (1 − t) X + t Y, t = 0, 1/4, 1/2, 3/4, 1, against Y.

    Why the order is guaranteed: SW² is convex along mixtures (the transport cost is jointly
    convex) and 0 at t = 1, hence decreasing; the Gram of a mixture is the mixture of the
    Grams, so the Gram distance is (1 − t) times its start exactly; with X and Y of equal
    means the mixture's covariance is (1 − t) Σ_X + t Σ_Y, and the Gaussian W2² is convex in
    Σ (tr Σ linear, tr (B Σ B)^½ concave), hence decreasing too.
    """
    rng = np.random.default_rng(3)
    x = rng.gamma(1.5, size=(40, 6))
    y = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6))
    x, y = (x - x.mean(0) + 1.0).astype(np.float32), (y - y.mean(0) + 1.0).astype(np.float32)
    d = np.array([_mixture_distances(x, y, 4 - k, k) for k in range(5)])   # t = k / 4
    rel = d / d[0]
    assert (np.diff(rel, axis=0) < 0).all(), rel
    assert rel[-1] == pytest.approx([0, 0, 0], abs=1e-3)
    np.testing.assert_allclose(rel[:, 1], [1, .75, .5, .25, 0], atol=1e-5)


def test_blend_of_content_and_style_scores_between(tiny_vgg, pair):
    """[C|C] → [C|S] → [S|S] on the centre-tap network: 1, between, 0, for every measure.

    [C|S]'s features are exactly the 50/50 mixture of C's and S's (see _centre_tap), and
    [C|C] has C's distribution (duplicated), so the content's score is 1; by the argument
    of the test above the Gram score is exactly 0.5 and SW is at most √½ at every layer.
    Mean/cov has no such bound (the means differ); it is checked to lie strictly between.
    """
    vgg = _centre_tap(tiny_vgg)
    c, s = pair
    cc, cs, ss = (np.concatenate(p, 1) for p in ((c, c), (c, s), (s, s)))
    r_cc, r_cs, r_ss = nstjax.score(vgg, cc, s, [cc, cs, ss])
    for m in MEASURES:
        assert r_cc.style[m] == pytest.approx(1.0, abs=1e-12)
        assert 0.05 < r_cs.style[m] < 0.95, (m, r_cs.style)
        assert r_ss.style[m] < 1e-4
    assert r_cs.style["gram"] == pytest.approx(0.5, abs=1e-4)
    assert max(r_cs.style_per_layer["sliced_wasserstein"].values()) <= np.sqrt(0.5) + 1e-5
    assert r_cc.content_error == 0.0 and 0 < r_cs.content_error < r_ss.content_error


# ------------------------------------------------------------------ sizes, inputs, API


def test_other_size_is_resized_for_the_content_measures(tiny_vgg, pair):
    c, s = pair
    (r,) = nstjax.score(tiny_vgg, c, s, [make_image(64, 40, seed=3)])
    assert r.resized and r.shape == (64, 40)
    assert all(np.isfinite(v) for v in r.style.values())
    assert np.isfinite(r.content_error) and -1 <= r.ssim <= 1


def test_bad_arguments(tiny_vgg, pair):
    c, s = pair
    with pytest.raises(ValueError, match="no images"):
        nstjax.score(tiny_vgg, c, s, [])
    with pytest.raises(ValueError, match="H×W×3"):
        nstjax.score(tiny_vgg, c, s, [c[..., 0]])


def test_signature_follows_the_api_rules():
    params = inspect.signature(nstjax.score).parameters
    assert list(params) == ["vgg", "content", "style", "images"]
    assert all(p.default is p.empty for p in params.values())
    assert "score" in nstjax.__all__ and "ScoreResult" in nstjax.__all__


# ------------------------------------------------------------------------- the CLI


@pytest.fixture
def files(tmp_path, pair):
    c, s = pair
    paths = {}
    for name, img in {"content.png": c, "style.png": s,
                      "wide.png": make_image(32, 64, seed=4)}.items():
        paths[name] = tmp_path / name
        Image.fromarray((img * 255).round().astype(np.uint8)).save(paths[name])
    return paths


@pytest.fixture
def cli(tiny_vgg, monkeypatch, capsys):
    monkeypatch.setattr(nstjax, "load_vgg19", lambda *a, **k: tiny_vgg)

    def call(*argv):
        code = run(["score", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_cli_table(cli, files):
    code, out, err = cli("--content", files["content.png"], "--style", files["style.png"],
                         files["content.png"], files["style.png"], files["wide.png"])
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["image", "SW", "Gram", "mean/cov", "relu4_2", "SSIM"]
    assert len(lines) == 5 and lines[-1].startswith("style columns:")
    row = lines[1].split()
    assert row[0].endswith("content.png") and row[1:] == ["1.0000"] * 3 + ["0.0000", "1.0000"]
    assert lines[2].split()[1] == "0.0000"
    assert "wide.png: aspect 64×32 differs" in err


def test_cli_json(cli, files):
    code, out, err = cli("--content", files["content.png"], "--style", files["style.png"],
                         "--json", "--size", "40", files["content.png"], files["wide.png"])
    assert code == 0, err
    record = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert record["style_layers"] == list(S.STYLE_LAYERS)
    first, wide = record["images"]
    assert first["size"] == [40, 27] and wide["size"] == [20, 40]
    assert set(first["style"]) == set(MEASURES)
    assert first["style"]["gram"] == pytest.approx(1.0) and first["content_error"] == 0.0
    assert set(first["style_per_layer"]["sliced_wasserstein"]) == set(S.STYLE_LAYERS)


@pytest.mark.parametrize("argv,message", [
    (["--content", "{content}", "--style", "{style}", "{tmp}/missing.png"], "no such file"),
    (["--content", "{content}", "--style", "{notimg}", "{content}"], "not a readable image"),
    (["--content", "{content}", "--style", "{style}"], "required: IMAGE"),
    (["--style", "{style}", "{content}"], "--content"),
    (["--content", "{content}", "--style", "{style}", "--size", "8", "{content}"], "16-pixel"),
])
def test_cli_bad_input_one_line_exit_2(cli, files, tmp_path, argv, message):
    notimg = tmp_path / "notes.png"
    notimg.write_text("this is not an image")
    fmt = dict(content=files["content.png"], style=files["style.png"], tmp=tmp_path,
               notimg=notimg)
    code, out, err = cli(*[a.format(**fmt) for a in argv])
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


@pytest.mark.real_weights
def test_score_ranks_a_style_weight_sweep_in_order_of_weight(real_vgg):
    """Issue 18: the three style distances fall, and the content error rises, as the style
    weight of a sweep grows (real VGG19 at 64×48: a procedural photo, and a tinted noise
    texture for the painting, whose statistics the Gram loss can reach)."""
    from conftest import make_image
    content = jnp.asarray(make_image(48, 64, seed=1))
    noise = jax.random.uniform(jax.random.PRNGKey(3), (48, 64, 3))
    style = jnp.clip(jnp.asarray([0.8, 0.6, 0.2]) * noise + 0.2 * jnp.roll(noise, 1, 0), 0, 1)
    res = nstjax.sweep(real_vgg, content, style, {"style_weight": [1.0, 30.0, 1000.0]},
                       key=jax.random.PRNGKey(0), solver=nstjax.Solver(max_iter=40))
    scores = nstjax.score(real_vgg, content, style, [jnp.asarray(x) for x in res.images])
    for measure in ("sliced_wasserstein", "gram", "mean_cov"):
        values = [s.style[measure] for s in scores]
        assert values[0] > values[1] > values[2], (measure, values)
    errors = [s.content_error for s in scores]
    assert errors[0] < errors[1] < errors[2], errors
