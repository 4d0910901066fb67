"""The commands' memory check: refuse, before decoding anything, a run whose compiled
program would not fit, naming the largest ``--size`` (or ``--tile``) that does.

A closed-form screen (:func:`nstjax.run.memory.estimate_transfer_bytes`) settles the clear
cases; near the budget, XLA's own figures for the solve's compiled program decide
(:func:`compiled_transfer_bytes`).  With ``--remat auto``, block checkpointing is taken
when the program without it would not fit.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.cli.common import MIN_SIZE, UsageError, build_solver, style_size_of
from nstjax.io.image import ImageError, scaled_shape
from nstjax.io.weights import CONV_NAMES, VGGWeights
from nstjax.model.vgg import VGG_WIDTHS
from nstjax.objective.config import loss_weights
from nstjax.objective.terms import compute_targets
from nstjax.run import memory, transfer

# XLA:CPU's buffer analysis undercounts checkpointed programs: the measured peak resident
# memory of a value-and-gradient at 1024×768 was 1.84 GiB against 1.48 GiB estimated for
# --remat block (1.24×), at 2048×1536 7.22 against 5.78 GiB (1.25×), while --remat none's
# estimates held (1.78/1.76, 6.98/7.01 GiB).  Checkpointed estimates are scaled by this
# on a CPU; on accelerators they are taken as they are (not measured).
CPU_CHECKPOINT_UNDERCOUNT = 1.25


def _undercount(policy: str) -> float:
    if policy != "none" and jax.default_backend() == "cpu":
        return CPU_CHECKPOINT_UNDERCOUNT
    return 1.0


class TooBig(UsageError):
    """A run that would not fit in memory; ``largest`` is the largest ``--size`` that
    fits (0: none)."""
    def __init__(self, message: str, largest: int):
        super().__init__(message)
        self.largest = largest


def check_memory(args, objective, size: int, *, members: int = 1):
    """Refuse, before decoding anything, a run whose compiled program would not fit.
    A quick closed-form screen first; a size that could come near the budget (80% of
    :func:`nstjax.run.memory.available_bytes`) is decided by XLA's own figures for the solve's
    compiled program (:func:`compiled_transfer_bytes`).  With ``--remat auto`` (the
    default) the checkpointing policy ``"block"`` is taken when ``"none"`` would not fit.
    A refusal names the largest ``--size`` that fits and the options that would make
    this one fit.

    Returns:
      ``objective``, with its checkpointing policy chosen when ``--remat`` is auto.
    """
    if args.demo:
        shapes = [(3 * size // 4, size), (style_size_of(args, size),) * 2]
    else:
        try:
            shapes = [scaled_shape(args.content, size)]
            shapes += [scaled_shape(s, style_size_of(args, size)) for s in args.style]
        except ImageError as e:       # a bomb or a broken file, refused before decoding
            raise UsageError(str(e)) from None
    (h, w), style_shapes = shapes[0], shapes[1:]
    tile = getattr(args, "tile", None)
    if tile:                           # tiled: one tile at a time is solved
        h, w = min(h, tile), min(w, tile)
    budget = 0.8 * memory.available_bytes()
    style_refusal = _style_refusal(args, objective, style_shapes, budget, tile)
    if style_refusal == "refit":                       # tiles: the style was made smaller
        return check_memory(args, objective, size, members=members)
    screen = memory.estimate_transfer_bytes(h, w, layers=objective.layers, members=members)
    if style_refusal is not None and screen <= 4 * budget:  # far beyond: the content first
        raise style_refusal
    if screen < 0.25 * budget:
        return objective
    auto = getattr(args, "remat", None) in (None, "auto")
    policies = ("none", "block") if auto else (objective.remat,)
    solver = build_solver(args)
    how = "compiled estimate"
    for policy in policies:
        candidate = dataclasses.replace(objective, remat=policy)
        if screen > 4 * budget:      # far out of reach: no need to compile to know
            need, how = screen, "estimate"
            continue
        need = (members * _undercount(policy)
                * compiled_transfer_bytes(candidate, solver, (h, w), style_shapes))
        if need <= budget:
            if policy != objective.remat:
                print(f"note: {w}×{h} does not fit without checkpointing; using --remat "
                      f"{policy} ({need / 2**30:.1f} GiB)", file=sys.stderr)
            return candidate
    # memory grows with the pixels of content and styles alike (both follow --size)
    edge = min(size, tile) if tile else size
    largest = int(edge * (budget / need) ** 0.5 * 0.95) // 16 * 16
    options = ["--tile auto (any size, solved in overlapping tiles)"]
    if objective.precision != "bf16":
        options.append("--precision bf16 (about half the activations)")
    if "block" not in policies:
        options.append("--remat block")
    fits = (f"the largest that fits is --size {largest}" if largest >= MIN_SIZE
            else "no size fits")
    if tile:
        options = options[1:]
        fits = (f"the largest tile that fits is --tile {largest}" if largest >= MIN_SIZE
                else "no tile fits")
    raise TooBig(
        f"{w}×{h} needs about {need / 2**30:.1f} GiB ({how}, checkpointing "
        f"{candidate.remat}), more than the {budget / 2**30:.1f} GiB this machine allows; "
        f"{fits}" + ("; or use " + ", ".join(options) if options else ""), largest)


def _style_refusal(args, objective, style_shapes, budget: float, tile):
    """``None`` when every style's forward pass fits; ``"refit"`` after lowering
    ``args.style_size`` to the largest that fits (tiles, with no size asked for); else the
    :class:`TooBig` to raise."""
    explicit = args.style_size is not None or getattr(args, "style_scale", None) is not None
    for sh, sw in style_shapes:
        need = memory.estimate_transfer_bytes(sh, sw, layers=objective.style_layers)
        if need <= budget:
            continue
        edge = int(max(sh, sw) * (budget / need) ** 0.5 * 0.95) // 16 * 16
        if tile and not explicit and edge >= MIN_SIZE:
            print(f"note: a {sw}×{sh} style would need {need / 2**30:.1f} GiB; using "
                  f"--style-size {edge}", file=sys.stderr)
            args.style_size = edge
            return "refit"
        how = "" if explicit else " (a style follows the content's long edge unless told)"
        return TooBig(f"a {sw}×{sh} style image{how} needs about {need / 2**30:.1f} GiB, more "
                      f"than the {budget / 2**30:.1f} GiB this machine allows; use "
                      f"--style-size {max(edge, MIN_SIZE)} or smaller", edge)
    return None


def compiled_transfer_bytes(objective, solver, shape: tuple, style_shapes) -> int:
    """Peak bytes of one chunk of the solve (``transfer_advance``) for a ``shape`` content
    image, from XLA's analysis of the compiled program (nothing is allocated or run).

    The program is lowered on abstract arguments (the real VGG19's shapes), so it is the
    one the run compiles; with the persistent compilation cache on, the run reuses it.
    """
    sds = jax.ShapeDtypeStruct
    params, cin = {}, 3
    for name in CONV_NAMES:
        cout = VGG_WIDTHS[int(name[5]) - 1]
        params[name] = {"kernel": sds((3, 3, cin, cout), jnp.float32),
                        "bias": sds((cout,), jnp.float32)}
        cin = cout
    vgg = VGGWeights(params=params, mean=sds((3,), jnp.float32), std=sds((3,), jnp.float32),
                     scale=sds((), jnp.float32), bgr=sds((), jnp.bool_))
    content = sds(tuple(shape) + (3,), jnp.float32)
    styles = [sds(tuple(s) + (3,), jnp.float32) for s in style_shapes]
    weights = loss_weights(objective, n_styles=len(styles))
    key = jax.random.PRNGKey(0)
    targets = jax.eval_shape(lambda v, c, s: compute_targets(v, c, s, objective=objective),
                             vgg, content, styles)
    state, problem = jax.eval_shape(
        lambda x, p: transfer.transfer_init(x, p, solver, objective=objective),
        content, transfer.Problem(vgg, targets, weights, key))
    with warnings.catch_warnings():   # JAX's notes on index dtypes of huge shapes
        warnings.simplefilter("ignore")
        compiled = transfer.advance_jit.lower(state, problem, solver, np.int32(1),
                                              objective=objective).compile()
    args = (state, vgg, targets, problem.weights, content, styles)
    return memory.program_memory(compiled, args=args).total
