"""``python -m nstjax`` is the ``nstjax`` command."""

from nstjax.cli import main

main()
