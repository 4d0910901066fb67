"""Nearest neighbours under centred cosine distance, and the two losses of Neural Neighbor
Style Transfer (Kolkin et al. 2022, "Neural Neighbor Style Transfer", §3).

NNST replaces each content feature vector by its nearest style feature vector, the distance
being the cosine distance after each set is centred by its own mean (§3.1, "centered cosine
distance", ``pairwise_distances_cos_center`` in the authors' ``utils/distance.py``), then
fits the image to the replaced features:

* :func:`cosine_target_loss`: ``mean_p (1 − cos(F_p, T_p))``, the hypercolumn-matching
  regime (§3.2, ``optimize_output_im`` without ``final_pass``);
* :func:`nearest_distance_loss`: ``mean_p min_q d_cc(F_p, S_q)``, the feature-splitting
  regime of the last pass, each layer matched on its own.

The search is chunked over the query rows (a ``lax.map`` over blocks), so that the distance
matrix is never whole: a block holds at most :data:`DISTANCE_BLOCK` distances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DISTANCE_BLOCK = 1 << 24          # distances per block of the search (64 MiB in float32)
_HIGHEST = jax.lax.Precision.HIGHEST


def _unit_rows(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def centered_unit_rows(x):
    """Rows of ``f32[N, D]`` less their mean row, scaled to unit length (the operands of
    centred cosine distance)."""
    return _unit_rows(x - jnp.mean(x, axis=0, keepdims=True))


def centered_cosine_distances(x, y):
    """``d[i, j] = 1 − cos(x_i − x̄, y_j − ȳ)`` for ``x: f32[N, D]``, ``y: f32[M, D]``,
    each set centred by its own mean."""
    return 1.0 - jnp.matmul(centered_unit_rows(x), centered_unit_rows(y).T, precision=_HIGHEST)


def block_rows(n_reference: int, budget: int = DISTANCE_BLOCK) -> int:
    """Query rows per block so that a block's distances to ``n_reference`` rows fit
    ``budget``."""
    return max(1, budget // max(1, int(n_reference)))


def nearest_indices(queries, reference, *, block: int | None = None):
    """``i32[N]``: for each row of ``queries: f32[N, D]`` the index of its nearest row of
    ``reference: f32[M, D]`` under centred cosine distance (both sets centred by their own
    whole mean), computed ``block`` query rows at a time."""
    q = centered_unit_rows(queries)
    r = centered_unit_rows(reference)
    n = q.shape[0]
    block = min(n, block or block_rows(r.shape[0]))
    blocks = -(-n // block)
    padded = jnp.zeros((blocks * block, q.shape[1]), q.dtype).at[:n].set(q)

    def nearest(rows):
        return jnp.argmax(jnp.matmul(rows, r.T, precision=_HIGHEST), axis=1)

    found = jax.lax.map(nearest, padded.reshape(blocks, block, -1))
    return found.reshape(-1)[:n].astype(jnp.int32)


def replace_features(queries, reference, *, block: int | None = None):
    """Each row of ``queries`` replaced by its nearest row of ``reference``
    (:func:`nearest_indices`): NNST's target features (§3.1, ``replace_features``)."""
    return jnp.take(reference, nearest_indices(queries, reference, block=block), axis=0)


def cosine_target_loss(features, target):
    """``mean_p (1 − cos(F_p, T_p))`` over the rows of ``f32[N, D]`` features and targets
    (not centred; norms clamped at 1e-4 as the authors' ``get_feat_norms``)."""
    def unit(x):
        return x / jnp.sqrt(jnp.clip(jnp.sum(x * x, axis=-1, keepdims=True), 1e-8, 1e8))
    return jnp.mean(1.0 - jnp.sum(unit(features) * unit(target), axis=-1))


def nearest_distance_loss(features, reference, *, block: int | None = None):
    """``mean_p min_q d_cc(F_p, S_q)``: each current feature's centred cosine distance to
    its nearest reference feature, averaged (the feature-splitting loss of one layer).

    The minimum's gradient is the gradient at its argmin, so the search runs without a
    gradient (:func:`nearest_indices`) and only the matched pairs are differentiated:
    the same value and gradient as differentiating the whole distance matrix, at the cost
    of the search alone."""
    found = jax.lax.stop_gradient(nearest_indices(features, reference, block=block))
    matched = jnp.take(centered_unit_rows(reference), found, axis=0)
    return jnp.mean(1.0 - jnp.sum(centered_unit_rows(features) * matched, axis=-1))
