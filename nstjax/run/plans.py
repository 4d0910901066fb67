"""One ``stylize`` with plans as values: how a transfer is laid out, and its colour control.

:func:`stylize` is the one entry point.  ``plan`` says how the image is solved:

* :class:`Single` — one solve at the output size (:func:`nstjax.run.transfer.stylize`);
* :class:`Ladder` — coarse to fine over a ladder of sizes (Gatys et al. 2017 §6,
  :func:`nstjax.run.multiscale.stylize_multiscale`);
* :class:`nstjax.large.tiling.Tiles` — a coarse solve, then overlapping tiles (any size);
* :class:`nstjax.large.sharding.Sharded` — the image's rows split over devices.

``color`` says what of the content's colour is kept (Gatys et al. 2017 §5): ``None``,
:class:`Luminance` (transfer the luminance only) or :class:`Histogram` (first recolour the
styles to the content's colour statistics).  It is applied here, once, around any plan
(:func:`nstjax.run.color.with_color_control`).  What a plan cannot take (masks, alpha,
an Adam warm start, a start image) is refused from one table, :data:`SUPPORTS`, in one line.

A plan is any value with a ``solve(vgg, content, styles, **kw) -> TransferResult`` method
and a ``name`` in :data:`SUPPORTS`; the drivers under it stay callable by themselves.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from nstjax.objective.config import LossWeights, Objective
from nstjax.run import color as color_control
from nstjax.run import multiscale, transfer
from nstjax.run.hooks import Callbacks
from nstjax.run.result import TransferResult
from nstjax.solve.solver import Solver

# what each plan takes beyond the images, the objective, weights, solver, key and callbacks
# ("init_image": a start given as an array; the named starts every plan takes)
SUPPORTS = {
    "Single": frozenset({"style_masks", "content_mask", "alpha", "init_image", "warm_start",
                         "keep_opt_state"}),
    "Ladder": frozenset({"style_masks", "content_mask", "alpha", "init_image"}),
    "Tiles": frozenset(),
    "Sharded": frozenset({"init_image"}),
}
_SAID = {"style_masks": "style masks", "content_mask": "a content mask",
         "alpha": "an alpha channel", "init_image": "a start image",
         "warm_start": "a warm start", "keep_opt_state": "keep_opt_state"}


class Single(NamedTuple):
    """One solve at the output size."""

    name = "Single"

    def solve(self, vgg, content, styles, **kw) -> TransferResult:
        return transfer.stylize(vgg, content, styles, **kw)


class Ladder(NamedTuple):
    """Coarse to fine: solves at long edges from ``min_size`` to the output's, consecutive
    ratios at most ``factor``, each started from the last result upsampled.

    Attributes:
      min_size: the first long edge (≥ 16 px).
      iters: iterations per size, one value or one per size (the last repeating).
      factor, add_detail, carry_moments, content_decay: as
        :func:`nstjax.run.multiscale.stylize_multiscale`'s.
    """

    min_size: int = multiscale.DEFAULT_MIN_SIZE
    iters: int | Sequence[int] = multiscale.DEFAULT_SCALE_ITERS
    factor: float = multiscale.LADDER_FACTOR
    add_detail: bool = False
    carry_moments: bool = False
    content_decay: float = 1.0

    name = "Ladder"

    def sizes(self, long_edge: int) -> tuple[int, ...]:
        """The ladder's long edges for an output of ``long_edge`` pixels."""
        return multiscale.size_ladder(min(self.min_size, long_edge), long_edge,
                                      factor=self.factor)

    def iterations(self, long_edge: int) -> tuple[int, ...]:
        """Iterations at each of :meth:`sizes`."""
        return multiscale.scale_iterations(self.iters, len(self.sizes(long_edge)))

    def solve(self, vgg, content, styles, **kw) -> TransferResult:
        return multiscale.stylize_multiscale(
            vgg, content, styles, min_size=self.min_size, iters=self.iters,
            factor=self.factor, add_detail=self.add_detail,
            carry_moments=self.carry_moments, content_decay=self.content_decay, **kw)


class Luminance(NamedTuple):
    """Keep the content's chroma exactly: the luminance alone is transferred (§5.2)."""

    preserve = "luminance"
    match = "cholesky"


class Histogram(NamedTuple):
    """Recolour each style to the content's colour mean and covariance first (§5.1), by a
    ``"cholesky"`` or ``"eigen"`` (image analogies) linear map."""

    match: str = "cholesky"
    preserve = "histogram"


def color_of(preserve_color: str | None, color_match: str = "cholesky"):
    """The colour value of the older string arguments (``"luminance"``, ``"histogram"``)."""
    if preserve_color is None:
        return None
    if preserve_color == "luminance":
        return Luminance()
    if preserve_color == "histogram":
        return Histogram(color_match)
    raise ValueError(f"preserve-color must be one of luminance, histogram, not "
                     f"{preserve_color!r}")


def check_plan(plan, **given) -> None:
    """Refuse what ``plan`` cannot take: ``given`` names the optional inputs passed
    (``style_masks=...``, ``alpha=...``, ``init_image=True``); one ``ValueError`` line."""
    name = getattr(plan, "name", None)
    if name not in SUPPORTS or not callable(getattr(plan, "solve", None)):
        raise ValueError(f"plan must be one of {', '.join(SUPPORTS)} (a value with a solve "
                         f"method), not {plan!r}")
    for what, value in given.items():
        if value is not None and value is not False and what not in SUPPORTS[name]:
            takes = ", ".join(p for p, s in SUPPORTS.items() if what in s) or "none"
            raise ValueError(f"the {name} plan does not take {_SAID[what]} (plans that do: "
                             f"{takes})")


def stylize(vgg, content, style, *, key, plan=Single(), color=None,
            objective: Objective = Objective(), weights: LossWeights | None = None,
            solver: Solver = Solver(), init="content", callbacks: Callbacks | None = None,
            style_masks=None, content_mask=None, mask_mode: str = "average", alpha=None,
            warm_start=None, keep_opt_state: bool = False,
            preserve_color: str | None = None, color_match: str = "cholesky"
            ) -> TransferResult:
    """Style transfer of ``content`` to ``style`` along ``plan``, keeping ``color``.

    Args:
      vgg, content, style, key, objective, weights, solver, init, callbacks: as
        :func:`nstjax.run.transfer.stylize` (the single solve).
      plan: :class:`Single` (default), :class:`Ladder`, ``Tiles`` or ``Sharded``.
      color: ``None``, :class:`Luminance` or :class:`Histogram`.
      style_masks, content_mask, mask_mode, alpha, warm_start, keep_opt_state: as the
        single solve's, where the plan takes them (:data:`SUPPORTS`).
      preserve_color, color_match: the older spelling of ``color``
        (``"luminance"``/``"histogram"``, ``"cholesky"``/``"eigen"``).

    Returns:
      The plan's :class:`~nstjax.TransferResult` (a ladder's or tiles' solves in
      ``result.stages``), its image final RGB.

    Raises:
      ValueError: an unknown plan, or an input the plan does not take (one line).
    """
    if color is None:
        color = color_of(preserve_color, color_match)
    elif preserve_color is not None:
        raise ValueError("give color= or preserve_color=, not both")
    check_plan(plan, style_masks=style_masks, content_mask=content_mask, alpha=alpha,
               init_image=not isinstance(init, str), warm_start=warm_start,
               keep_opt_state=keep_opt_state)
    kw = {"key": key, "objective": objective, "weights": weights, "solver": solver}
    for name, value in (("style_masks", style_masks), ("content_mask", content_mask),
                        ("alpha", alpha), ("warm_start", warm_start)):
        if value is not None:
            kw[name] = value
    if style_masks is not None or content_mask is not None:
        kw["mask_mode"] = mask_mode
    if keep_opt_state:
        kw["keep_opt_state"] = True

    def solve(c, s, i, cb):
        return plan.solve(vgg, c, s, init=i, callbacks=cb, **kw)

    content = transfer.check_image_array(content, "content")
    styles = transfer.as_image_list(style)
    if color is None:
        return solve(content, styles, init, callbacks)
    return color_control.with_color_control(solve, content, styles, init, callbacks,
                                            preserve=color.preserve, method=color.match)
