"""Winograd F(2×2, 3×3) convolution against lax.conv (issue 9)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.conv_winograd import conv3x3_winograd, transform_kernel


def _conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("shape", [(1, 8, 8, 3, 5), (2, 7, 9, 4, 6), (1, 1, 2, 2, 3)])
def test_winograd_matches_lax_conv_values_and_gradients(shape):
    n, h, w, c, k = shape  # odd sizes exercise the partial last tile
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(n, h, w, c)))
        ker = jnp.asarray(rng.normal(size=(3, 3, c, k)))
        np.testing.assert_allclose(conv3x3_winograd(x, ker), _conv(x, ker), rtol=1e-12,
                                   atol=1e-12)
        probe = jnp.asarray(rng.normal(size=(n, h, w, k)))
        gx, gk = jax.grad(lambda x, k: jnp.sum(conv3x3_winograd(x, k) * probe), (0, 1))(x, ker)
        rx, rk = jax.grad(lambda x, k: jnp.sum(_conv(x, k) * probe), (0, 1))(x, ker)
        np.testing.assert_allclose(gx, rx, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(gk, rk, rtol=1e-11, atol=1e-11)


def test_winograd_float32_error_is_at_rounding_level():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.uniform(-1, 1, size=(1, 16, 12, 32)), jnp.float32)
    ker = jnp.asarray(rng.normal(size=(3, 3, 32, 16)) / 17.0, jnp.float32)
    ref = _conv(x, ker)
    out = conv3x3_winograd(x, ker, transformed=transform_kernel(ker))
    # F(2×2, 3×3)'s transforms have coefficients ±1 and ½: a few ulps of the output scale.
    assert float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref))) < 1e-5
