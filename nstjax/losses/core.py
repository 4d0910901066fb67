"""Content loss, Gram matrices and the Gram style losses, total variation.

All functions take the features of one image, ``f32[H, W, C]`` (NHWC without the batch);
``vmap`` them for batches.  Normalisers are computed in floating point: ``4 N² M²`` is far
beyond int32 for a 512×512 layer.

References:
  mathur2017 (Gatys et al. reimplementation): eq. 1 (content), eq. 2 (Gram), eq. 3 (E_l),
  eq. 4 (L_style); stylerep eq. 1.2-1.3 (γ-normalised Gram); bordag2020 eq. 6 (gradient).
"""

from __future__ import annotations

import jax.numpy as jnp


def as_matrix(features):
    """``f32[H, W, C]`` to the paper's ``F`` of shape ``N × M`` (channels × positions)."""
    return jnp.reshape(features, (-1, features.shape[-1])).T


def position_weights(features, mask):
    """The per-position weights of a feature map as ``f32[M]`` (``None`` stays ``None``).

    ``mask`` is ``f32[H, W]`` for features ``f32[H, W, C]``: how much each position counts
    in every statistic (guided Gram, guided MMD, guided BN; Gatys et al. 2017 §4).  ``None``
    means every position counts once, and every function here then gives exactly its
    unweighted value.
    """
    if mask is None:
        return None
    if mask.shape != features.shape[:-1]:
        raise ValueError(f"mask of shape {mask.shape} for features of shape {features.shape}")
    return jnp.reshape(mask, (-1,)).astype(features.dtype)


def sizes(features, *, mask=None):
    """``(N, M)`` = (channels, positions) of a feature map, as float32 scalars.

    With a ``mask`` (see :func:`position_weights`), ``M`` is the total weight ``Σ_p w_p``.
    """
    n = jnp.asarray(features.shape[-1], jnp.float32)
    if mask is not None:
        return n, jnp.sum(position_weights(features, mask))
    m = jnp.asarray(features.size // features.shape[-1], jnp.float32)
    return n, m


def position_mean(x, w):
    """Mean of the rows of ``x: f32[M, ...]``, weighted by ``w: f32[M]`` when given."""
    if w is None:
        return jnp.mean(x, axis=0)
    w = jnp.reshape(w, (-1,) + (1,) * (x.ndim - 1))
    return jnp.sum(x * w, axis=0) / jnp.sum(w)


SELF_SIMILARITY_POSITIONS = 1024   # at most this many positions (a regular subsample)


def _subsample(rows, count: int):
    """Every ``k``-th row of ``rows: f32[M, ...]`` so that at most ``count`` remain (a fixed,
    regular subsample: the same positions at every evaluation, as a line search needs)."""
    step = max(1, -(-rows.shape[0] // count))
    return rows[::step]


def self_similarity(rows):
    """``D_ij = 1 − cos(f_i, f_j)`` for ``rows: f32[n, C]``, each column divided by its sum
    (STROTSS eq. 7): the layout of a picture without its appearance."""
    unit = rows / jnp.maximum(jnp.linalg.norm(rows, axis=-1, keepdims=True), 1e-8)
    d = 1.0 - unit @ unit.T
    return d / jnp.maximum(jnp.sum(d, axis=0, keepdims=True), 1e-8)


def self_similarity_loss(features, target, *, mask=None):
    """STROTSS's content loss: ``(1/n²) Σ_ij |D^X_ij − D^C_ij|`` between the column-normalised
    cosine self-similarity matrices of the output and the content features (eq. 7-8), over
    at most :data:`SELF_SIMILARITY_POSITIONS` positions (a regular subsample of the layer;
    the paper draws 1024 at random per step).  With a ``mask``, pair ``ij`` counts
    ``w_i w_j`` times (the weighted mean).

    References:
      Kolkin, Salavon, Shakhnarovich, "Style Transfer by Relaxed Optimal Transport and
      Self-Similarity", CVPR 2019, eq. 7-8.
    """
    x = _subsample(jnp.reshape(features, (-1, features.shape[-1])), SELF_SIMILARITY_POSITIONS)
    c = _subsample(jnp.reshape(target, (-1, target.shape[-1])), SELF_SIMILARITY_POSITIONS)
    diff = jnp.abs(self_similarity(x) - self_similarity(c))
    if mask is None:
        return jnp.mean(diff)
    w = _subsample(position_weights(features, mask), SELF_SIMILARITY_POSITIONS)
    pair = w[:, None] * w[None, :]
    return jnp.sum(pair * diff) / jnp.maximum(jnp.sum(pair), 1e-12)


def content_loss(features, target, *, kind: str = "sum", mask=None):
    """Content loss between feature maps.

    ``kind="sum"``: ``½ Σ (F − P)²`` (mathur2017 eq. 1), whose gradient is ``F − P``.
    ``kind="mse"``: ``mean (F − P)²`` (mathur2017 §3.3).
    ``kind="self-similarity"``: STROTSS's layout loss (:func:`self_similarity_loss`).

    With a ``mask`` (``f32[H, W]`` position weights, :func:`position_weights`), each
    position's squared error counts ``w_p`` times: ``½ Σ_p w_p ‖F_p − P_p‖²``, and for
    ``"mse"`` the weighted mean ``Σ_p w_p ‖F_p − P_p‖² / (C Σ_p w_p)``.  Ones give the
    unmasked values.
    """
    if kind == "self-similarity":
        return self_similarity_loss(features, target, mask=mask)
    d = features - target
    sq = d * d
    if mask is not None:
        w = jnp.reshape(position_weights(features, mask), features.shape[:-1] + (1,))
        if kind == "sum":
            return 0.5 * jnp.sum(w * sq)
        if kind == "mse":
            return jnp.sum(w * sq) / (features.shape[-1] * jnp.sum(w))
    elif kind == "sum":
        return 0.5 * jnp.sum(sq)
    elif kind == "mse":
        return jnp.mean(sq)
    raise ValueError(f"content loss kind must be 'sum', 'mse' or 'self-similarity', not "
                     f"{kind!r}")


def gram_matrix(features, *, mask=None):
    """``G = F Fᵀ`` (mathur2017 eq. 2): ``f32[C, C]`` from ``f32[H, W, C]``, unnormalised.

    With a ``mask``, the guided Gram ``Σ_p w_p f_p f_pᵀ`` (Gatys et al. 2017 §4).
    """
    f = jnp.reshape(features, (-1, features.shape[-1]))
    w = position_weights(features, mask)
    return f.T @ f if w is None else (f * w[:, None]).T @ f


def gram_loss(features, target_gram, *, mask=None):
    """Gatys' ``E_l = 1/(4 N² M²) Σ (G − A)²`` (mathur2017 eq. 3).

    Its gradient with respect to ``F`` (``N × M``) is ``(1/(N² M²)) (G − A) F``
    (bordag2020 eq. 6).  With a ``mask``, ``G`` is the guided Gram and ``M = Σ_p w_p``.
    """
    n, m = sizes(features, mask=mask)
    d = gram_matrix(features, mask=mask) - target_gram
    return jnp.sum(d * d) / (4.0 * n * n * m * m)


def gram_loss_gamma(features, target_gram, *, mask=None):
    """``γ Σ (G − A)²`` with ``γ = 1/(c² w² h²)`` (stylerep eq. 1.2-1.3); 4× Gatys' E_l."""
    n, m = sizes(features, mask=mask)
    d = gram_matrix(features, mask=mask) - target_gram
    return jnp.sum(d * d) / (n * n * m * m)


def gram_loss_hw(features, target_gram, *, mask=None):
    """Squared error of Grams normalised per position, ``Σ (G/M − A/M)²``."""
    _, m = sizes(features, mask=mask)
    d = (gram_matrix(features, mask=mask) - target_gram) / m
    return jnp.sum(d * d)


def gram_loss_chw(features, target_gram, *, mask=None):
    """Mean squared error of Grams normalised by ``C·H·W`` (the common PyTorch tutorial form)."""
    n, m = sizes(features, mask=mask)
    d = (gram_matrix(features, mask=mask) - target_gram) / (n * m)
    return jnp.mean(d * d)


TV_LEVELS = 255.0     # "mean" TV in 8-bit levels


def tv_loss(image, *, kind: str = "sum"):
    """Total variation of an NHWC (or HWC) image, squared neighbour differences (Mahendran
    and Vedaldi 2015's ``β = 2`` regulariser, as in Johnson's neural-style).

    ``kind="sum"``: their sum over [0, 1] pixels, which grows with the pixels like the
    ``"sum"`` content loss; ``"mean"``: the sum over the ``H·W·3`` values, in 8-bit levels
    (0-255, the units the network's input is in: ``×255²``), per value like the ``"mse"``
    content loss, so a TV weight means the same at every size.
    """
    dy = image[..., 1:, :, :] - image[..., :-1, :, :]
    dx = image[..., :, 1:, :] - image[..., :, :-1, :]
    total = jnp.sum(dy * dy) + jnp.sum(dx * dx)
    if kind == "sum":
        return total
    if kind == "mean":
        return total * (TV_LEVELS ** 2 / float(image.shape[-3] * image.shape[-2] * image.shape[-1]))
    raise ValueError(f"tv kind must be 'sum' or 'mean', not {kind!r}")


def tv_kind(content_loss: str) -> str:
    """The TV normalisation that goes with a content loss: ``"sum"`` with ``"sum"``, else
    ``"mean"`` (both terms per value, so their balance holds at every size)."""
    return "sum" if content_loss == "sum" else "mean"
