"""Neural Neighbor Style Transfer (Kolkin et al. 2022): the neighbour search against a
brute-force NumPy one, the losses' closed forms, OkLab, the colour match's moments, and
the driver on a tiny network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.losses.neighbors import (
    centered_cosine_distances, cosine_target_loss, nearest_distance_loss, nearest_indices,
    replace_features,
)
from nstjax.model.vgg import init_random_weights
from nstjax.run.nnst import nnst, resize_aligned, scale_count
from nstjax.run.oklab import match_moments, nnst_color_match, oklab_to_rgb, rgb_to_oklab
from nstjax.run.hooks import Callbacks


def _brute_nearest(q, r):
    """Centred cosine nearest neighbours, written out in NumPy (float64)."""
    q = q - q.mean(0)
    r = r - r.mean(0)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    d = 1.0 - q @ r.T
    return d.argmin(1), d


@pytest.mark.parametrize("block", [None, 1, 7, 64])
def test_nearest_indices_equal_a_brute_force_search_for_every_block(block):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(53, 12)).astype(np.float32) + 0.3
    r = rng.normal(size=(91, 12)).astype(np.float32) - 0.2
    want, d = _brute_nearest(q.astype(np.float64), r.astype(np.float64))
    got = np.asarray(nearest_indices(jnp.asarray(q), jnp.asarray(r), block=block))
    # a tie within float32 rounding may pick either; none here is closer than 1e-5
    second = np.sort(d, 1)[:, 1] - d.min(1)
    assert second.min() > 1e-5
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(np.asarray(centered_cosine_distances(q, r)), d, atol=1e-5)


def test_replace_features_gathers_the_nearest_reference_rows():
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(20, 6)), rng.normal(size=(30, 6))
    idx, _ = _brute_nearest(q, r)
    got = replace_features(jnp.asarray(q, jnp.float32), jnp.asarray(r, jnp.float32), block=3)
    np.testing.assert_allclose(np.asarray(got), r[idx].astype(np.float32), rtol=0, atol=0)


def test_the_search_is_invariant_to_a_shift_or_a_positive_scale_of_either_set():
    rng = np.random.default_rng(2)
    q = jnp.asarray(rng.normal(size=(40, 8)), jnp.float32)
    r = jnp.asarray(rng.normal(size=(50, 8)), jnp.float32)
    base = np.asarray(nearest_indices(q, r))
    # centring uses each set's mean, so a shift of a whole set changes nothing, nor does
    # a positive scale of a whole set (cosines)
    np.testing.assert_array_equal(np.asarray(nearest_indices(q + 5.0, r - 3.0)), base)
    np.testing.assert_array_equal(np.asarray(nearest_indices(3.0 * q, 0.25 * r)), base)


def test_cosine_target_loss_closed_forms():
    t = jnp.asarray([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    assert float(cosine_target_loss(2.5 * t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_target_loss(-t, t)) == pytest.approx(2.0, abs=1e-6)
    ortho = jnp.asarray([[0.0, 1.0], [2.0, 0.0], [-4.0, 3.0]])
    assert float(cosine_target_loss(ortho, t)) == pytest.approx(1.0, abs=1e-6)


def test_nearest_distance_loss_is_zero_on_the_reference_itself_and_positive_off_it():
    rng = np.random.default_rng(3)
    r = jnp.asarray(rng.normal(size=(30, 5)), jnp.float32)
    assert float(nearest_distance_loss(r, r)) == pytest.approx(0.0, abs=1e-5)
    q = jnp.asarray(rng.normal(size=(10, 5)), jnp.float32)
    _, d = _brute_nearest(np.asarray(q, np.float64), np.asarray(r, np.float64))
    assert float(nearest_distance_loss(q, r)) == pytest.approx(d.min(1).mean(), abs=1e-5)


def test_oklab_of_white_black_and_the_round_trip():
    lab = np.asarray(rgb_to_oklab(jnp.asarray([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])))
    # Ottosson: white is L = 1, a = b = 0; his printed matrices reproduce it to about 1e-4
    np.testing.assert_allclose(lab[0], [1.0, 0.0, 0.0], atol=2e-4)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-6)
    x = jax.random.uniform(jax.random.PRNGKey(0), (50, 3), minval=0.02, maxval=0.98)
    np.testing.assert_allclose(np.asarray(oklab_to_rgb(rgb_to_oklab(x))), np.asarray(x),
                               atol=2e-5)


def test_match_moments_gives_the_targets_mean_and_covariance():
    rng = np.random.default_rng(4)
    src = jnp.asarray(rng.normal(size=(4000, 2)) @ [[1.0, 0.5], [0.0, 0.3]], jnp.float32)
    tgt = jnp.asarray(rng.normal(size=(3000, 2)) @ [[0.2, 0.0], [0.1, 0.4]] + [0.1, -0.2],
                      jnp.float32)
    out, cov_t = match_moments(src, tgt)
    out = np.asarray(out, np.float64)
    np.testing.assert_allclose(out.mean(0), np.asarray(tgt).mean(0), atol=1e-5)
    # the 1e-4 ridge on both covariances moves the match by about that much
    np.testing.assert_allclose(np.cov(out.T, bias=True), np.asarray(cov_t), atol=2e-4)


def test_color_match_keeps_the_outputs_lightness_within_the_styles_range():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(5), 3)
    c = jax.random.uniform(k1, (16, 12, 3))
    s = jax.random.uniform(k2, (14, 10, 3), minval=0.2, maxval=0.8)
    o = jax.random.uniform(k3, (16, 12, 3))
    got = np.asarray(nnst_color_match(c, s, o))
    assert got.shape == (16, 12, 3) and got.min() >= 0.0 and got.max() <= 1.0
    l_got = np.asarray(rgb_to_oklab(jnp.asarray(got)))[..., 0]
    l_out = np.clip(np.asarray(rgb_to_oklab(o))[..., 0],
                    float(np.asarray(rgb_to_oklab(s))[..., 0].min()),
                    float(np.asarray(rgb_to_oklab(s))[..., 0].max()))
    # the final clip to the style's a, b range can move L a little through the gamut clip
    assert np.corrcoef(l_got.ravel(), l_out.ravel())[0, 1] > 0.95


def test_resize_aligned_keeps_the_corners_and_a_linear_ramp():
    x = jnp.arange(9.0)[:, None, None] * jnp.ones((9, 5, 1))
    y = np.asarray(resize_aligned(x, 5, 3))
    np.testing.assert_allclose(y[:, 0, 0], [0.0, 2.0, 4.0, 6.0, 8.0], atol=1e-6)
    np.testing.assert_allclose(y[0], np.zeros((3, 1)), atol=1e-6)


@pytest.mark.parametrize("size, want", [(48, 1), (127, 1), (128, 2), (256, 3), (512, 4),
                                        (1024, 5)])
def test_scale_count_is_the_authors_at_512_and_1024(size, want):
    assert scale_count(size) == want


def test_nnst_runs_lowers_its_loss_and_stops_on_request():
    vgg = init_random_weights(jax.random.PRNGKey(0))
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    c = jax.random.uniform(k1, (40, 32, 3))
    s = jax.random.uniform(k2, (36, 40, 3))
    r = nnst(vgg, c, s, key=jax.random.PRNGKey(2), iters=12, lr=2e-2, scales=1)
    assert r.image.shape == c.shape and r.n_iter == 24 and not r.stopped
    assert np.isfinite(r.history).all()
    assert r.history[11] < r.history[0] and r.history[23] < r.history[12]
    assert 0.0 <= float(r.image.min()) and float(r.image.max()) <= 1.0
    calls = []
    stop = Callbacks(progress=lambda i, loss: calls.append(i), should_stop=lambda: True)
    r = nnst(vgg, c, s, key=jax.random.PRNGKey(2), iters=25, scales=1, callbacks=stop)
    assert r.stopped and r.n_iter == 10 and calls == list(range(1, 11))
    with pytest.raises(ValueError, match="alpha"):
        nnst(vgg, c, s, key=jax.random.PRNGKey(2), alpha=1.5)


def test_nearest_distance_gradient_equals_the_gradient_of_the_whole_minimum():
    rng = np.random.default_rng(6)
    q = jnp.asarray(rng.normal(size=(15, 4)), jnp.float32)
    r = jnp.asarray(rng.normal(size=(25, 4)), jnp.float32)

    def whole(x):      # the authors' form: min over the full distance matrix
        return jnp.mean(jnp.min(centered_cosine_distances(r, x), axis=0))

    np.testing.assert_allclose(float(nearest_distance_loss(q, r)), float(whole(q)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.grad(lambda x: nearest_distance_loss(x, r))(q)),
                               np.asarray(jax.grad(whole)(q)), atol=1e-5)
