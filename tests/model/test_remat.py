"""Checkpointing policies: the same gradients, less memory kept for the backward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nstjax
from nstjax.model.vgg import REMAT_POLICIES, remat_policy
from nstjax.objective.terms import compute_targets, total_loss
from nstjax.run import memory
from tests.conftest import make_image


def _loss_and_grad(vgg, policy, *, size=32, layers=None):
    kw = {} if layers is None else {"style_layers": layers}
    obj = nstjax.Objective(remat=policy, **kw)
    content = jnp.asarray(make_image(size, size, seed=1))
    style = jnp.asarray(make_image(size, size, seed=2))
    targets = compute_targets(vgg, content, [style], objective=obj)
    weights = nstjax.loss_weights(obj, style_weight=1e3)
    x = jnp.asarray(make_image(size, size, seed=3))
    f = jax.jit(jax.value_and_grad(
        lambda x: total_loss(x, vgg, targets, weights, jax.random.PRNGKey(0), objective=obj)))
    return f, x


@pytest.mark.parametrize("policy", ["conv", "block"])
def test_checkpointed_gradient_equals_plain(tiny_vgg, policy):
    """Recomputing activations changes nothing but memory: value to 1e-6, gradient to 1e-5
    of its largest entry (float32 re-association only)."""
    f0, x = _loss_and_grad(tiny_vgg, "none")
    f1, _ = _loss_and_grad(tiny_vgg, policy)
    v0, g0 = f0(x)
    v1, g1 = f1(x)
    assert float(jnp.abs(g0).max()) > 0
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0),
                               atol=1e-5 * float(jnp.abs(g0).max()), rtol=0)


def test_conv_features_returned_under_every_policy(tiny_vgg):
    """A pre-ReLU layer (conv4_2) and a pool come back identical under every policy."""
    x = jnp.asarray(make_image(32, 32, seed=4))
    ref = nstjax.extract_features(tiny_vgg, x, ["conv4_2", "pool2"])
    for policy in REMAT_POLICIES:
        got = nstjax.extract_features(tiny_vgg, x, ["conv4_2", "pool2"], remat=policy)
        for k in ref:
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=1e-6,
                                       atol=1e-6)


def test_policy_names_and_booleans():
    assert remat_policy(True) == "conv" and remat_policy(False) == "none"
    assert nstjax.Objective(remat=True).remat == "conv"
    with pytest.raises(ValueError, match="remat must be one of"):
        nstjax.Objective(remat="layer")


def test_checkpointing_lowers_the_compiled_estimate():
    """XLA's temporaries: the block policy keeps less than none; conv never keeps more."""
    vgg = nstjax.init_random_weights(jax.random.PRNGKey(0), widths=(16, 32, 64, 64, 64))
    temps = {}
    for policy in REMAT_POLICIES:    # measured: 9.1 MB (none, conv), 7.9 MB (block)
        f, x = _loss_and_grad(vgg, policy, size=128)
        temps[policy] = memory.program_memory(f.lower(x).compile()).temp
    assert temps["block"] < temps["none"], temps
    assert temps["conv"] <= 1.01 * temps["none"], temps


def test_max_pool_gradient_equals_select_and_scatter():
    """The index-free max-pool backward equals XLA's rule exactly, ties included (flat
    regions at a positive value and at zero; odd sizes cropped like VALID padding)."""
    import flax.linen as nn

    from nstjax.model.pooling import max_pool2x2
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 9, 11, 5))
    x = x.at[0, :4].set(1.5).at[1, :, :4].set(0.0)   # ties: flat regions, ReLU zeros
    w = jax.random.normal(jax.random.PRNGKey(4), (2, 4, 5, 5))
    ours = jax.grad(lambda x: jnp.sum(w * max_pool2x2(x)))(x)
    ref = jax.grad(lambda x: jnp.sum(w * nn.max_pool(x, (2, 2), strides=(2, 2))))(x)
    np.testing.assert_array_equal(np.asarray(max_pool2x2(x)),
                                  np.asarray(nn.max_pool(x, (2, 2), strides=(2, 2))))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
