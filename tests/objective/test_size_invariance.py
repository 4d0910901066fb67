"""The default objective balances content and style the same way at every size (issue 18).

Gatys' Gram loss (mathur2017 eq. 3) is per position: ``E_l = Σ(G − A)²/(4N²M²)`` with ``G`` a
sum over the ``M`` positions, so ``G/M`` and ``E_l`` do not grow with the image; its gradient
per pixel shrinks as ``1/M``.  The summed content loss ``½Σ(F − P)²`` (mathur2017 eq. 1) grows
as ``M`` and its gradient per pixel does not shrink, so the style/content balance falls as
``1/M``: 16× from 128 to 512 px.  The default content loss, ``mean (F − P)²``, is per position
like the style term, and the balance holds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.objective.terms import objective_terms

pytestmark = pytest.mark.real_weights


def _balance(vgg, objective, long_edge):
    """``‖∇_x style‖ / ‖∇_x content‖`` at li2017's start (uniform noise).

    Content and style are stationary random textures (iid pixels: the content uniform in
    [0, 1], the style a tinted, narrower uniform), whose feature statistics are the same at
    every size, so only the normalisation can change the balance.  (A photo and a painting
    resized change what VGG sees; tubingen/starry_night at 128/256/512 px: 9.9, 10.2, 10.2.)
    """
    h, w = 3 * long_edge // 4, long_edge
    k_content, k_style, k_start = jax.random.split(jax.random.PRNGKey(long_edge), 3)
    content = jax.random.uniform(k_content, (h, w, 3))
    style = jnp.asarray([0.7, 0.5, 0.2]) + 0.25 * jax.random.uniform(k_style, (h, w, 3))
    targets = nstjax.compute_targets(vgg, content, [style], objective=objective)
    weights = nstjax.loss_weights(objective)
    x = jax.random.uniform(k_start, content.shape)
    key = jax.random.PRNGKey(0)

    def parts(image):
        terms = objective_terms(image, vgg, targets, weights, key, objective=objective)
        return jnp.stack([terms["style"], terms["content"]])

    # one forward pass and two backward passes, in one compiled program
    g_style, g_content = jax.jit(jax.jacrev(parts))(x)
    return float(jnp.linalg.norm(g_style) / jnp.linalg.norm(g_content))


def test_default_balance_holds_from_128_to_512_px(real_vgg):
    objective = nstjax.Objective()
    assert objective.content_loss == "mse"
    small, large = _balance(real_vgg, objective, 128), _balance(real_vgg, objective, 512)
    # the bound: the balance changes by less than 10% over a 16× change in pixels
    assert abs(large / small - 1.0) < 0.10, (small, large)


def test_summed_content_loss_loses_the_balance(real_vgg):
    """The explicit choice ``content_loss="sum"`` keeps Gatys' loss and its size dependence:
    the balance falls roughly as 1/M (16× fewer style per content from 128 to 512 px)."""
    objective = nstjax.Objective(content_loss="sum")
    small, large = _balance(real_vgg, objective, 128), _balance(real_vgg, objective, 512)
    assert 8.0 < small / large < 32.0, (small, large)


def test_default_matches_summed_loss_at_the_reference_size():
    """λ are measured against ``½Σ`` at relu4_2 of a 256×192 picture (512 × 768); there the
    default objective's scales make the two content losses weigh the same."""
    mse = nstjax.loss_weights(nstjax.Objective())
    summed = nstjax.loss_weights(nstjax.Objective(content_loss="sum"))
    factor = 2.0 / (512 * 768)   # mean over C·M against ½ Σ over C·M
    np.testing.assert_allclose(np.asarray(mse.style_scales),
                               np.asarray(summed.style_scales) * factor, rtol=1e-6)
