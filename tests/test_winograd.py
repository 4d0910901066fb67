"""Winograd F(4×4, 3×3) (Lavin & Gray 2016, §4) against the direct convolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.model.winograd import AT, BT, G, conv3x3_winograd


def _direct(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=jax.lax.Precision.HIGHEST)


def test_one_tile_is_the_minimal_filtering_identity():
    """``Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`` equals the 4×4 'valid' correlation of a 6×6 tile with a
    3×3 kernel, in float64 NumPy from the paper's matrices (1e-12)."""
    bt = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
    gm = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    at = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                   [0, 1, -1, 8, -8, 1]], float)
    for ours, paper in ((BT, bt), (G, gm), (AT, at)):     # the module's, to float32
        np.testing.assert_allclose(ours, paper, rtol=1e-7)
    rng = np.random.default_rng(0)
    d, g = rng.normal(size=(6, 6)), rng.normal(size=(3, 3))
    y = at @ ((gm @ g @ gm.T) * (bt @ d @ bt.T)) @ at.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, direct, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 7, 9, 3, 5), (2, 16, 12, 8, 4), (1, 13, 6, 2, 3)])
def test_value_and_input_gradient_match_the_direct_convolution(shape):
    """float32, any size (partial tiles at the edges): relative to the largest output,
    1e-5 (F(4×4, 3×3)'s constants, up to 8 and 1/24, cost a few bits)."""
    n, h, w, ci, co = shape
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(n, h, w, ci)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, ci, co)), jnp.float32)
    ref = _direct(x, k)
    got = conv3x3_winograd(x, k)
    assert got.shape == ref.shape
    assert float(jnp.abs(got - ref).max() / jnp.abs(ref).max()) < 1e-5
    gw = jnp.asarray(rng.normal(size=ref.shape), jnp.float32)
    gx, gk = jax.grad(lambda x, k: jnp.sum(gw * conv3x3_winograd(x, k)), (0, 1))(x, k)
    rx, rk = jax.grad(lambda x, k: jnp.sum(gw * _direct(x, k)), (0, 1))(x, k)
    assert float(jnp.abs(gx - rx).max() / jnp.abs(rx).max()) < 1e-5
    assert float(jnp.abs(gk - rk).max() / jnp.abs(rk).max()) < 1e-5
