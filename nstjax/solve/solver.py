"""How to minimise: :class:`Solver`, the optimiser's name, budget and traced rates.

A pytree: which optimiser, how many iterations and the L-BFGS history are static fields
(part of the compile key); the learning rate and the stop rules are traced leaves, so a
sweep can ``vmap`` over them.
"""

from __future__ import annotations

import dataclasses
import math

import jax

from nstjax.objective.config import check_weight
from nstjax.solve import optimize


@dataclasses.dataclass(frozen=True)
class Solver:
    """How to minimise: a pytree whose static fields are part of the compile key.

    Attributes:
      optimizer: a registered optimiser name (static; see :func:`nstjax.optimizer_names`).
      max_iter: iteration limit (static).
      history_size: L-BFGS memory (static).
      lr: step size of ``adam`` and ``gd`` (traced).
      rtol: stop when the loss changes by less than this fraction (traced; 0 disables;
        li2017 §4 stops at 0.5%).
      tol_x: stop when ``‖x_k − x_{k−1}‖ / ‖x_{k−1}‖`` falls below this (traced; 0 disables;
        the rule of li2017's released code).
      threshold: stop when the loss falls below this (traced; ``-inf`` disables).
      average: decay ``β`` in [0, 1) of an exponential moving average of the iterates,
        returned instead of the last one (traced; 0 disables; crowsonkb's style transfer
        uses 0.99 with Adam, whose iterates jitter): see
        :func:`nstjax.solve.minimize.minimize_continue`.
    """

    optimizer: str = optimize.DEFAULT_OPTIMIZER
    max_iter: int = 200
    history_size: int = 10
    lr: float = 0.02
    rtol: float = 0.0
    tol_x: float = 0.0
    threshold: float = -math.inf
    average: float = 0.0
    box: bool = True
    normalize: bool = True

    def __post_init__(self):
        if not isinstance(self.lr, (int, float)):   # traced copy made by unflattening
            return
        if self.optimizer not in optimize.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from "
                             f"{', '.join(optimize.OPTIMIZERS)}")
        if int(self.max_iter) < 1:
            raise ValueError("iterations (max_iter) must be >= 1")
        if int(self.history_size) < 1:
            raise ValueError("history size must be >= 1")
        object.__setattr__(self, "max_iter", int(self.max_iter))
        object.__setattr__(self, "history_size", int(self.history_size))
        for name, flag, positive in (("lr", "lr", True), ("rtol", "tol", False),
                                     ("tol_x", "tol_x", False)):
            check_weight(flag, getattr(self, name), positive=positive)
            object.__setattr__(self, name, float(getattr(self, name)))
        t = float(self.threshold)
        if math.isnan(t) or t == math.inf:
            raise ValueError(f"threshold must be a number or -inf, got {t:g}")
        object.__setattr__(self, "threshold", t)
        a = float(self.average)
        if not 0.0 <= a < 1.0:
            raise ValueError(f"average (the moving average's decay) must be in [0, 1), got {a:g}")
        object.__setattr__(self, "average", a)
        object.__setattr__(self, "box", bool(self.box))
        object.__setattr__(self, "normalize", bool(self.normalize))


jax.tree_util.register_dataclass(
    Solver, data_fields=["lr", "rtol", "tol_x", "threshold", "average"],
    meta_fields=["optimizer", "max_iter", "history_size", "box", "normalize"])
