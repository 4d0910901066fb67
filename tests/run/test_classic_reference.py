"""The PyTorch runner of jcjohnson/neural-style's defaults against the formulas of
``neural_style.lua``, written out here in NumPy (not from the runner's helpers), on a tiny
random network: content ``5·mean (F−P)²``, style ``100·mean (G/(CHW) − A/(CHW))²``, the TV
gradient of ``½ τ Σ (Δx² + Δy²)`` on the cropped grid, the start ``randn · 0.001`` and the
Caffe preprocessing ``BGR · 256 − mean``.  Tolerances: float32 round-off (rtol 1e-4)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "reference" / "neural_style.py"
spec = importlib.util.spec_from_file_location("classic_reference", _PATH)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def random_params(seed=0, width=4):
    """Conv weights with every block ``width`` channels wide (the shapes only matter)."""
    rng = np.random.default_rng(seed)
    params, cin = {}, 3
    for name, kind, conv in ref.vgg_layers():
        if kind == "conv":
            w = (rng.standard_normal((width, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
            params[conv] = (w, np.abs(rng.standard_normal(width)).astype(np.float32))
            cin = width
    return params


def numpy_features(params, x):
    """VGG up to relu5_1 in NumPy: 3×3 convs (pad 1), relu, 2×2 max pooling in ceil mode."""
    out = {}
    for name, kind, conv in ref.vgg_layers():
        if kind == "conv":
            w, b = params[conv]
            p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
            h, wd = x.shape[1:]
            x = sum(np.einsum("oc,chw->ohw", w[:, :, i, j], p[:, i:i + h, j:j + wd])
                    for i in range(3) for j in range(3)) + b[:, None, None]
        elif kind == "relu":
            x = np.maximum(x, 0)
        else:
            c, h, wd = x.shape
            hp, wp = -(-h // 2) * 2, -(-wd // 2) * 2
            p = np.full((c, hp, wp), -np.inf)
            p[:, :h, :wd] = x
            x = p.reshape(c, hp // 2, 2, wp // 2, 2).max(axis=(2, 4))
        out[name] = x
        if name == "relu5_1":
            break
    return out


def test_loss_matches_the_lua_formulas():
    rng = np.random.default_rng(1)
    content = rng.uniform(size=(37, 45, 3)).astype(np.float32)
    style = rng.uniform(size=(40, 33, 3)).astype(np.float32)
    image = rng.uniform(size=(37, 45, 3)).astype(np.float32)
    params = random_params()
    obj = ref.ClassicObjective(params, content, style)

    def caffe(rgb):
        return (rgb[..., ::-1] * 256.0 - np.array([103.939, 116.779, 123.68])).transpose(2, 0, 1)

    fx, fc, fs = (numpy_features(params, caffe(a)) for a in (image, content, style))
    expect_content = 5.0 * np.mean((fx["relu4_2"] - fc["relu4_2"]) ** 2)
    expect_style = 0.0
    for l in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
        def g(f):
            m = f.reshape(f.shape[0], -1)
            return m @ m.T / f.size
        expect_style += 100.0 * np.mean((g(fx[l]) - g(fs[l])) ** 2)
    terms = obj.terms(ref.preprocess(image, torch))
    np.testing.assert_allclose(float(terms["content"]), expect_content, rtol=1e-4)
    np.testing.assert_allclose(float(terms["style"]), expect_style, rtol=1e-4)


def test_tv_gradient_is_the_gradient_of_the_cropped_squared_tv():
    x = torch.randn(1, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    tv = 0.5 * ref.TV_WEIGHT * (((x[..., :-1, :-1] - x[..., :-1, 1:]) ** 2).sum()
                                + ((x[..., :-1, :-1] - x[..., 1:, :-1]) ** 2).sum())
    tv.backward()
    obj = ref.ClassicObjective.__new__(ref.ClassicObjective)
    obj.torch, obj.tv_weight = torch, ref.TV_WEIGHT
    np.testing.assert_allclose(obj.tv_gradient(x.detach()).numpy(), x.grad.numpy(), rtol=1e-12)


def test_start_is_the_mean_colour_with_small_noise_and_one_evaluation_per_iteration():
    rng = np.random.default_rng(2)
    content = rng.uniform(size=(40, 40, 3)).astype(np.float32)
    params = random_params()
    image, info = ref.classic_transfer(params, content, content, iters=1, seed=0)
    assert info["evaluations"] == 1     # maxIter 1: the start's evaluation only
    start, _ = ref.classic_transfer(params, content, content, iters=1, seed=0)
    torch.manual_seed(0)
    noise = torch.randn(1, 3, 40, 40) * 0.001
    assert abs(float(noise.std()) - 1e-3) < 1e-4
    assert np.abs(start - ref.deprocess(noise)).max() > 0   # one step taken from the start
    # one L-BFGS step from the mean colour moves the picture; the mean colour is the start
    mean_rgb = np.array([123.68, 116.779, 103.939]) / 256.0
    _, info5 = ref.classic_transfer(params, content, content, iters=5, seed=0)
    assert info5["evaluations"] == 5
    assert np.abs(ref.deprocess(torch.zeros(1, 3, 2, 2)) - mean_rgb).max() < 1e-6



SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"


@pytest.mark.real_weights
@pytest.mark.slow
def test_classic_preset_matches_the_reference_on_a_small_pair(tmp_path, real_vgg):
    """``--preset classic`` against the PyTorch runner on the same pair and weights at 64 px
    (scikit-image's astronaut × Starry Night, each at a 64-px long edge, 150 iterations):
    within 25 % in style distance (``nstjax score``'s sliced Wasserstein) and 10 % in content
    error.  The two start from different noise and ours keeps the pixels in the box, so
    they agree in measure, not pixel for pixel."""
    skimage = pytest.importorskip("skimage")
    painting = SHARED_IMAGES / "starry_night.jpg"
    if not painting.exists():
        pytest.skip(f"{painting} absent")
    import nstjax
    from PIL import Image

    from nstjax.cli import run
    from nstjax.io import weights as W

    paths = []
    for name, source in (("c", Path(skimage.__file__).parent / "data" / "astronaut.png"),
                         ("s", painting)):
        im = Image.open(source).convert("RGB")
        scale = 64 / max(im.size)
        path = tmp_path / f"{name}.png"
        im.resize((round(im.size[0] * scale), round(im.size[1] * scale)), Image.BICUBIC).save(path)
        paths.append(path)
    content, style = (nstjax.load_image(p) for p in paths)
    iters = 150
    theirs, _ = ref.classic_transfer(ref.read_weights(W.default_weights_path()),
                                     np.asarray(content), np.asarray(style), iters=iters, seed=0)
    out = tmp_path / "ours.png"
    assert run(["stylize", "--content", str(paths[0]), "--style", str(paths[1]), "--size", "64",
                "--preset", "classic", "--iters", str(iters), "--output", str(out),
                "--no-progress"]) == 0
    ref_score, our_score = nstjax.score(real_vgg, content, style, [theirs, nstjax.load_image(out)])
    sw_ref, sw_ours = (s.style["sliced_wasserstein"] for s in (ref_score, our_score))
    assert abs(sw_ours - sw_ref) <= 0.25 * sw_ref, (sw_ours, sw_ref)
    assert abs(our_score.content_error - ref_score.content_error) \
        <= 0.10 * ref_score.content_error, (our_score.content_error, ref_score.content_error)
