"""STROTSS's self-similarity content loss (Kolkin, Salavon, Shakhnarovich, CVPR 2019,
eq. 7-8), against NumPy written from the paper:

    D_ij = 1 − cos(F_i, F_j),   D̂_ij = D_ij / Σ_i D_ij,
    L = (1/n²) Σ_ij |D̂^X_ij − D̂^C_ij|.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import feature_maps, make_image, rows

import nstjax
from nstjax.losses.core import SELF_SIMILARITY_POSITIONS, content_loss


def _self_similarity_np(x):
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1.0 - unit @ unit.T
    return d / d.sum(axis=0, keepdims=True)


def _loss_np(f, p, w=None):
    dx, dc = _self_similarity_np(rows(f)), _self_similarity_np(rows(p))
    if w is None:
        return np.abs(dx - dc).mean()
    pair = np.outer(w, w)
    return (pair * np.abs(dx - dc)).sum() / pair.sum()


def test_value_matches_the_paper(x64):
    f, _ = feature_maps(1, shape_f=(5, 6, 4))
    p, _ = feature_maps(2, shape_f=(5, 6, 4))
    got = float(content_loss(jnp.asarray(f), jnp.asarray(p), kind="self-similarity"))
    # float64 on both sides: only the order of the sums differs
    np.testing.assert_allclose(got, _loss_np(f, p), rtol=1e-12)


def test_zero_at_the_content_and_blind_to_each_positions_scale(x64):
    f, _ = feature_maps(3, shape_f=(4, 5, 6))
    p, _ = feature_maps(4, shape_f=(4, 5, 6))
    f, p = np.abs(f), np.abs(p)
    assert float(content_loss(jnp.asarray(p), jnp.asarray(p), kind="self-similarity")) == 0.0
    scale = np.random.default_rng(0).uniform(0.5, 3.0, size=(4, 5, 1))
    base = float(content_loss(jnp.asarray(f), jnp.asarray(p), kind="self-similarity"))
    scaled = float(content_loss(jnp.asarray(f * scale), jnp.asarray(p), kind="self-similarity"))
    np.testing.assert_allclose(scaled, base, rtol=1e-10)      # cosines only


def test_masks_weight_pairs(x64):
    f, _ = feature_maps(5, shape_f=(4, 5, 3))
    p, _ = feature_maps(6, shape_f=(4, 5, 3))
    w = np.random.default_rng(1).uniform(size=(4, 5))
    got = float(content_loss(jnp.asarray(f), jnp.asarray(p), kind="self-similarity",
                             mask=jnp.asarray(w)))
    np.testing.assert_allclose(got, _loss_np(f, p, w.ravel()), rtol=1e-12)
    ones = float(content_loss(jnp.asarray(f), jnp.asarray(p), kind="self-similarity",
                              mask=jnp.ones((4, 5))))
    np.testing.assert_allclose(ones, _loss_np(f, p), rtol=1e-12)


def test_large_layers_use_a_regular_subsample(x64):
    """Above SELF_SIMILARITY_POSITIONS positions, every k-th (k = ⌈M/1024⌉) is compared:
    the same positions at every evaluation (a deterministic objective for line searches)."""
    f, _ = feature_maps(7, shape_f=(48, 50, 3))        # 2400 positions: every 3rd
    p, _ = feature_maps(8, shape_f=(48, 50, 3))
    k = -(-2400 // SELF_SIMILARITY_POSITIONS)
    want = _loss_np(rows(f)[::k][None], rows(p)[::k][None])
    got = float(content_loss(jnp.asarray(f), jnp.asarray(p), kind="self-similarity"))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_runs_as_the_content_loss_of_a_transfer(tiny_vgg):
    content = jnp.asarray(make_image(32, 32, seed=1))
    style = jnp.asarray(make_image(32, 32, seed=2))
    objective = nstjax.Objective(content_loss="self-similarity")
    res = nstjax.stylize(tiny_vgg, content, style, key=jax.random.PRNGKey(0),
                         objective=objective, init="noise",
                         solver=nstjax.Solver(optimizer="adam", max_iter=5))
    h = np.asarray(res.term_history["content"])[:int(res.n_iter)]
    assert np.all(np.isfinite(h)) and np.isfinite(float(res.loss))
    with pytest.raises(ValueError, match="self-similarity"):
        nstjax.Objective(content_loss="self_similarity")
