"""The ``nstjax`` command: ``stylize``, ``sweep``, ``invert``, ``score``, ``video``,
``convert-weights``, ``serve``.

One parser per subcommand, built from the shared argument groups of
:mod:`nstjax.cli.common`; defaults are the library's.  ``python scripts/stylize.py`` and
``python scripts/sweep.py`` are the same commands.
"""

from __future__ import annotations

import importlib
import sys

from nstjax.cli import common

COMMANDS = {
    "stylize": ("stylize", "paint one image in the style of one or more others"),
    "sweep": ("sweep", "many settings in one compiled run, compared on a contact sheet"),
    "invert": ("invert", "see what a style statistic keeps: images rebuilt from it alone"),
    "score": ("score", "how stylised and how faithful pictures are, by measures no loss "
              "optimises"),
    "video": ("video", "temporally consistent style transfer of a clip (Ruder et al. 2016)"),
    "convert-weights": ("convert", "fetch the VGG19 weights once and convert them to vgg19.h5"),
    "serve": ("serve", "a local web studio that shows the picture as it forms, and sweeps"),
}


def command_module(name: str):
    """The module of subcommand ``name``, imported on first use (a run loads only its own
    command's dependencies: no video decoder or web server for ``nstjax stylize``)."""
    return importlib.import_module(f"nstjax.cli.{COMMANDS[name][0]}")


def build_parser(only=None) -> tuple[common.Parser, dict]:
    """The ``nstjax`` parser and its subcommands' parsers by name (with their arguments:
    all of them, or the subcommands named in ``only``)."""
    parser = common.Parser(prog="nstjax", description="Optimisation-based neural style "
                           "transfer in JAX.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parsers = {}
    for name, (_, help_text) in COMMANDS.items():
        parsers[name] = sub.add_parser(name, help=help_text,
                                       description=help_text[0].upper() + help_text[1:] + ".")
        if only is None or name in only:
            command_module(name).add_arguments(parsers[name])
    return parser, parsers


def run(argv=None) -> int:
    """Run ``nstjax ARGV``; returns the exit code (bad input: one line, exit code 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, parsers = build_parser(argv[:1] if argv and argv[0] in COMMANDS else ())
    try:
        if not argv or argv[0] not in parsers:
            parser.parse_args(argv)       # --help, or a one-line error naming the commands
            return common.EXIT_BAD_INPUT
        args = common.parse_args(parsers[argv[0]], argv[1:])
    except common.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return common.EXIT_BAD_INPUT
    return common.run_command(command_module(argv[0]).run, args)


def main() -> None:
    """Console entry point (``nstjax``)."""
    sys.exit(run())
