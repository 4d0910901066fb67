"""Gram targets are the style's statistics per position, whatever the style image's size.

jcjohnson/neural-style's ``StyleLoss`` divides each Gram matrix by its own map's size
(``G/(C·H·W)`` for the image, ``A/(C·H_s·W_s)`` for the style), so a landscape painting asks a
square photo for the painting's own per-position statistics.  Gatys' ``E_l = Σ(G − A)²/(4N²M²)``
(mathur2017 eq. 3) is written for images of one size; with the target rescaled to the image's
positions it becomes ``Σ(G/M − A/M_s)²/(4N²)``, the classic tool's loss up to a factor per
layer.  These tests write that closed form in NumPy from the features.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nstjax
from nstjax.objective.terms import objective_terms
from tests.conftest import make_image

LAYERS = ("relu1_1", "relu2_1", "relu3_1")


def _closed_form(vgg, content, style, layer_weights):
    """``Σ_l w_l Σ(G_l/M_l − A_l/M_s,l)²/(4 N_l²)`` in float64, from the two images' features."""
    f = nstjax.extract_features(vgg, content, LAYERS)
    s = nstjax.extract_features(vgg, style, LAYERS)
    total = 0.0
    for w, layer in zip(layer_weights, LAYERS):
        x = np.asarray(f[layer], np.float64).reshape(-1, f[layer].shape[-1])
        y = np.asarray(s[layer], np.float64).reshape(-1, s[layer].shape[-1])
        n = x.shape[1]
        d = x.T @ x / x.shape[0] - y.T @ y / y.shape[0]
        total += w * np.sum(d * d) / (4.0 * n * n)
    return total


@pytest.mark.parametrize("style_shape", [(48, 32), (32, 64), (24, 24)])
def test_gram_loss_compares_per_position_statistics(tiny_vgg, style_shape):
    """Image 32×48, style of another shape: the style term is the closed form above
    (rtol 1e-4, float32 sums of up to 1536 positions); at the image's own shape it is Gatys'
    eq. 3 unchanged (the (32, 48) case of the identity below)."""
    content = make_image(32, 48, seed=1)
    style = make_image(*style_shape, seed=2)
    image = make_image(32, 48, seed=3)
    objective = nstjax.Objective(style_layers=LAYERS, style_losses=("gram",))
    lw = (3.0, 1.0, 0.5)
    weights = nstjax.loss_weights(objective, style_layer_weights=lw, style_scales=[1.0],
                                  style_weight=1.0)
    targets = nstjax.compute_targets(tiny_vgg, content, [style], objective=objective)
    got = objective_terms(image, tiny_vgg, targets, weights, jax.random.PRNGKey(0),
                          objective=objective)["style"]
    want = _closed_form(tiny_vgg, image, style, lw)
    np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_style_at_the_image_shape_is_unscaled(tiny_vgg):
    """A style image of the image's shape keeps Gatys' target ``A = F_s F_sᵀ`` exactly."""
    style = make_image(32, 48, seed=2)
    objective = nstjax.Objective(style_layers=LAYERS, style_losses=("gram",))
    targets = nstjax.compute_targets(tiny_vgg, make_image(32, 48, seed=1), [style],
                                     objective=objective)
    s = nstjax.extract_features(tiny_vgg, style, LAYERS)
    for layer in LAYERS:
        np.testing.assert_array_equal(np.asarray(targets.style[0]["gram"][layer]),
                                      np.asarray(nstjax.gram_matrix(s[layer])))
