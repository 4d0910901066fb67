"""What a solving command reads, as one value made from its flags in the command's ``run``:
:class:`Inputs`.  Everything below ``run`` (loading, memory planning, writing without
overwriting an input, the session) takes this value, never the argparse namespace."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import jax

from nstjax.cli import common
from nstjax.cli.common import MIN_SIZE, UsageError
from nstjax.io import demo
from nstjax.io.image import ImageError, load_image, scaled_shape
from nstjax.run.start import INITS


class Inputs(NamedTuple):
    """A run's inputs, checked.

    Attributes:
      content: the content file (``None`` with ``demo``).
      styles: the style files.
      demo: the generated demo content and style stand in for the files.
      size: the content's long edge as solved (``--size``).
      style_size: the styles' long edge (``--style-size``, ``--style-scale`` or ``size``).
      init: a start image file (``--init PATH``), ``None`` for a named start.
      weights: the VGG19 weights file (``--weights``; ``None``: the default).
      seed: ``--seed``.
    """

    content: Path | None
    styles: tuple
    demo: bool
    size: int
    style_size: int
    init: Path | None = None
    weights: str | None = None
    seed: int = 0

    @classmethod
    def of(cls, args, size: int | None = None) -> "Inputs":
        """The inputs of a command's parsed flags, at long edge ``size`` (default
        ``--size``, checked) with the style's size of the flags (one line for a bad one)."""
        size = common.size_of(args) if size is None else int(size)
        init = getattr(args, "init", None)
        content = getattr(args, "content", None)
        return cls(content=Path(content) if content else None,
                   styles=tuple(Path(s) for s in getattr(args, "style", None) or ()),
                   demo=bool(getattr(args, "demo", False)), size=size,
                   style_size=common.style_size_of(args, size),
                   init=None if init is None or init in INITS else Path(init),
                   weights=getattr(args, "weights", None), seed=getattr(args, "seed", 0) or 0)

    @property
    def paths(self) -> list[Path]:
        """The files the run reads (never written over)."""
        paths = [self.content] if self.content else []
        return paths + list(self.styles) + ([self.init] if self.init else [])

    def key(self):
        """The run's PRNG key from the seed."""
        return jax.random.PRNGKey(self.seed)

    def shapes(self) -> list[tuple[int, int]]:
        """``[(H, W)]`` of the content and each style as :meth:`load` gives them, read from
        the files' headers (nothing is decoded)."""
        if self.demo:
            return [(3 * self.size // 4, self.size), (self.style_size,) * 2]
        try:
            return [scaled_shape(self.content, self.size)] + [
                scaled_shape(s, self.style_size) for s in self.styles]
        except ImageError as e:       # a bomb or a broken file, refused before decoding
            raise UsageError(str(e)) from None

    def load(self, *, alpha: bool = False):
        """``(content, [styles])`` as float32 RGB arrays (the demo images with ``demo``);
        with ``alpha=True``, ``(content, [styles], content alpha uint8[H, W] or None)``."""
        try:
            if self.demo:
                return (demo.demo_content(3 * self.size // 4, self.size),
                        [demo.demo_style(self.style_size, self.style_size)]
                        ) + ((None,) if alpha else ())
            wh = common.header_size(self.content)
            if max(wh) < MIN_SIZE:
                raise UsageError(f"{self.content}: {wh[0]}×{wh[1]} is below the {MIN_SIZE}-"
                                 "pixel minimum for a content image")
            note = lambda m: print(f"note: {m}", file=sys.stderr)  # noqa: E731
            content = load_image(self.content, size=self.size, log=note, alpha=alpha)
            content, a = content if alpha else (content, None)
            styles = [load_image(s, size=self.style_size, log=note) for s in self.styles]
            return (content, styles, a) if alpha else (content, styles)
        except ImageError as e:
            raise UsageError(str(e)) from None
