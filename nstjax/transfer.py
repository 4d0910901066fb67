"""The driver: one pure function from a start image to a result, and :func:`stylize`.

:func:`run_transfer` is the one driver.  :func:`stylize` runs it under ``jit`` for one
image; :func:`nstjax.sweep` under ``jit(vmap(...))`` for K settings; coarse-to-fine and
inversion drivers call it per scale or per cell.  What recompiles is the
:class:`~nstjax.config.Objective`, the :class:`~nstjax.config.Solver`'s static fields,
the image shapes and whether there are host callbacks; weights, rates, stop rules, images,
keys and the callbacks themselves are traced or looked up at run time.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from nstjax import hooks, optimize
from nstjax.config import LossWeights, Objective, Solver, loss_weights as make_loss_weights
from nstjax.objective import Targets, auto_scales, compute_targets, objective_terms, total_loss
from nstjax.weights import VGGWeights

INITS = ("content", "noise", "style")


class TransferResult(NamedTuple):
    """Outcome of :func:`stylize`.

    Attributes:
      image: ``f32[H, W, 3]`` RGB in [0, 1].
      loss: ``f32[]`` objective at ``image``.
      history: ``f32[max_iter]`` loss per iteration (NaN after the last).
      n_iter: ``i32[]`` iterations run.
      status: ``i32[]`` an :class:`nstjax.Status`.
      terms: ``{"content", "style", "tv"}`` weighted parts of the final loss.
      weights: the :class:`LossWeights` used (after automatic scaling).
    """

    image: jax.Array
    loss: jax.Array
    history: jax.Array
    n_iter: jax.Array
    status: jax.Array
    terms: dict
    weights: LossWeights


def run_transfer(x0, vgg: VGGWeights, targets: Targets, weights: LossWeights, solver: Solver,
                 key, *, objective: Objective, on_step=None):
    """Minimise the objective from ``x0``: pure, for your own ``jit`` / ``vmap``.

    Args:
      x0: ``f32[H, W, 3]`` start image.
      vgg: the network's parameters.
      targets: from :func:`nstjax.compute_targets`.
      weights: traced :class:`LossWeights` (``style_scales`` replaced first when
        ``objective.auto_scale``).
      solver: the :class:`Solver` (its static fields are part of the compile key).
      key: PRNG key of the sampling losses.
      objective: the static :class:`Objective`.
      on_step: optional traced hook for :func:`nstjax.minimize` (:mod:`nstjax.hooks`).

    Returns:
      ``(OptimizeResult, terms, weights)``: the solve, the weighted terms at its image
      (``content``, ``style``, ``tv``) and the weights used.
    """
    if objective.auto_scale:
        weights = weights._replace(style_scales=auto_scales(
            x0, vgg, targets, weights, key, objective=objective))
    optimizer = optimize.make_optimizer(solver.optimizer, lower=0.0, upper=1.0,
                                        history_size=solver.history_size, lr=solver.lr)

    def fun(x):
        return total_loss(x, vgg, targets, weights, key, objective=objective)

    result = optimize.minimize(fun, x0, optimizer, max_iter=solver.max_iter, rtol=solver.rtol,
                               tol_x=solver.tol_x, threshold=solver.threshold,
                               on_step=on_step)
    terms = objective_terms(result.x, vgg, targets, weights, key, objective=objective)
    return result, {k: v for k, v in terms.items() if k != "total"}, weights


@jax.jit(static_argnames=("objective", "snapshot_every", "hooked"))
def _stylize_program(x0, vgg, targets, weights, solver, key, run_id, *, objective,
                     snapshot_every, hooked):
    on_step = hooks.make_on_step(run_id, snapshot_every=snapshot_every) if hooked else None
    return run_transfer(x0, vgg, targets, weights, solver, key, objective=objective,
                        on_step=on_step)


def initial_image(content, styles: Sequence, init: str, key):
    """``"content"``, ``"noise"`` (uniform in [0, 1], seeded) or ``"style"`` (first style,
    resized to the content's shape)."""
    if init == "content":
        return content
    if init == "noise":
        return jax.random.uniform(key, content.shape, jnp.float32)
    if init == "style":
        return jax.image.resize(styles[0], content.shape, "linear").clip(0.0, 1.0)
    raise ValueError(f"init must be one of {', '.join(INITS)} (or an image), not {init!r}")


def as_image_list(style) -> list:
    """One ``f32[H, W, 3]`` image or a sequence of them, as a list of float32 arrays."""
    if getattr(style, "ndim", 0) == 3:
        return [jnp.asarray(style, jnp.float32)]
    images = [jnp.asarray(s, jnp.float32) for s in style]
    if not images:
        raise ValueError("no style image given")
    return images


def stylize(vgg: VGGWeights, content, style, *, key, objective: Objective = Objective(),
            weights: LossWeights | None = None, solver: Solver = Solver(),
            init="content", callbacks: hooks.Callbacks | None = None) -> TransferResult:
    """Run a whole style transfer as one compiled program.

    Args:
      vgg: the network's parameters (:func:`nstjax.load_vgg19`).
      content: ``f32[H, W, 3]`` RGB in [0, 1].
      style: one style image or a sequence of them (blended by ``weights.style_blend``).
      key: PRNG key (noise init and sampling losses).
      objective: the static :class:`Objective`.
      weights: the traced :class:`LossWeights` (default :func:`nstjax.loss_weights`).
      solver: the :class:`Solver`.
      init: ``"content"``, ``"noise"``, ``"style"`` or an ``f32[H, W, 3]`` start image.
      callbacks: optional host :class:`nstjax.hooks.Callbacks` (progress, snapshots, stop).

    Returns:
      A :class:`TransferResult`.
    """
    content = jnp.asarray(content, jnp.float32)
    styles = as_image_list(style)
    targets = compute_targets(vgg, content, styles, objective=objective)
    if weights is None:
        weights = make_loss_weights(objective, n_styles=len(styles))
    k_init, k_loss = jax.random.split(key)
    if isinstance(init, str):
        x0 = initial_image(content, styles, init, k_init)
    else:
        x0 = jnp.asarray(init, jnp.float32)
        if x0.shape != content.shape:
            raise ValueError(f"init image shape {x0.shape} differs from content "
                             f"{content.shape}")
    callbacks = callbacks or hooks.Callbacks()
    with hooks.attached(callbacks) as run_id:
        result, terms, weights = _stylize_program(
            x0, vgg, targets, weights, solver, k_loss, run_id, objective=objective,
            snapshot_every=callbacks.every, hooked=callbacks.any)
        jax.block_until_ready(result.x)
    return TransferResult(image=result.x, loss=result.value, history=result.history,
                          n_iter=result.n_iter, status=result.status, terms=terms,
                          weights=weights)
