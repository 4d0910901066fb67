"""The default objective and start are jcjohnson/neural-style's, written from neural_style.lua.

``StyleLoss``: ``100 · mean over C² of (G/(C·H·W) − A/(C·H_s·W_s))²`` per layer, equal layer
weights; ``ContentLoss``: ``5 · mean (F − P)²`` at relu4_2; start ``randn × 0.001`` around the
mean pixel.  nstjax's default (α = 1, β = 100, ``gram-chw``) is that objective divided by 5
with the style term a third as strong (:data:`nstjax.losses.builtin.CLASSIC_CHW_SCALE`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.objective.terms import objective_terms
from nstjax.run.transfer import NOISE_STD, initial_image
from tests.conftest import make_image

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _classic(vgg, image, content, style):
    """neural_style.lua's content and style losses, in float64 from the features."""
    f = nstjax.extract_features(vgg, image, STYLE_LAYERS + ("relu4_2",))
    p = nstjax.extract_features(vgg, content, ("relu4_2",))
    s = nstjax.extract_features(vgg, style, STYLE_LAYERS)
    content_loss = 5.0 * np.mean((np.asarray(f["relu4_2"], np.float64)
                                  - np.asarray(p["relu4_2"], np.float64)) ** 2)
    style_loss = 0.0
    for layer in STYLE_LAYERS:
        x = np.asarray(f[layer], np.float64).reshape(-1, f[layer].shape[-1])
        y = np.asarray(s[layer], np.float64).reshape(-1, s[layer].shape[-1])
        g = x.T @ x / x.size
        a = y.T @ y / y.size
        style_loss += 100.0 * np.mean((g - a) ** 2)
    return content_loss, style_loss


def test_default_objective_is_the_classic_balance(tiny_vgg):
    """Content 64×48 px, style 40×56 px (another shape): nstjax's default content term is
    the classic one / 5 and its style term the classic one / 15 (rtol 1e-4), so the
    per-layer balance (shallow layers 64× heavier than under Gatys' 1/(4N²M²)) is the tool's."""
    content, style = make_image(48, 64, seed=1), make_image(56, 40, seed=2)
    image = make_image(48, 64, seed=3)
    objective = nstjax.Objective()
    assert objective.style_losses == ("gram-chw",)
    targets = nstjax.compute_targets(tiny_vgg, content, [style], objective=objective)
    terms = objective_terms(image, tiny_vgg, targets, nstjax.loss_weights(objective),
                            jax.random.PRNGKey(0), objective=objective)
    want_content, want_style = _classic(tiny_vgg, image, content, style)
    np.testing.assert_allclose(float(terms["content"]), want_content / 5.0, rtol=1e-4)
    np.testing.assert_allclose(float(terms["style"]), want_style / 15.0, rtol=1e-4)


def test_noise_start_is_faint_noise_around_the_mean_colour():
    """``init="noise"``: per channel, mean = the content's mean colour (±3σ/√N) and standard
    deviation NOISE_STD (±2 %); no pixel outside [0, 1].  ``"uniform"`` keeps [0, 1]
    uniform noise (mean 1/2, variance 1/12)."""
    content = jnp.asarray(make_image(96, 128, seed=4))
    x = np.asarray(initial_image(content, [content], "noise", jax.random.PRNGKey(1)),
                   np.float64).reshape(-1, 3)
    n = x.shape[0]
    mean = np.asarray(content, np.float64).reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 3 * NOISE_STD / np.sqrt(n))
    np.testing.assert_allclose(x.std(axis=0), NOISE_STD, rtol=0.02)
    assert x.min() >= 0.0 and x.max() <= 1.0
    u = np.asarray(initial_image(content, [content], "uniform", jax.random.PRNGKey(1)))
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.002


@pytest.mark.real_weights
def test_style_distance_falls_with_the_style_weight(real_vgg):
    """A small real pair (64×48, a smooth photo-like image and a striped, saturated
    'painting'), 60 L-BFGS iterations from the default start at β = 1, 100, 10⁴: the
    style distance of :func:`nstjax.score` (sliced Wasserstein, not a loss that is
    optimised) falls strictly as β grows."""
    content = jnp.asarray(make_image(48, 64, seed=6))
    y, x = np.mgrid[0:64, 0:64]
    style = np.stack([0.5 + 0.5 * np.sin(x / 2.0), 0.2 + 0.2 * np.cos(y / 3.0),
                      0.5 - 0.4 * np.sin((x + y) / 4.0)], -1).astype(np.float32)
    style = jnp.asarray(style)
    objective = nstjax.Objective()
    solver = nstjax.Solver(max_iter=60)
    images = []
    for beta in (1.0, 100.0, 1e4):
        weights = nstjax.loss_weights(objective, style_weight=beta)
        res = nstjax.stylize(real_vgg, content, style, key=jax.random.PRNGKey(0),
                             objective=objective, weights=weights, solver=solver,
                             init="grey")
        images.append(np.asarray(res.image))
    sw = [s.style["sliced_wasserstein"] for s in nstjax.score(real_vgg, content, style,
                                                              images)]
    assert sw[0] > sw[1] > sw[2], sw
