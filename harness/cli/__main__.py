"""``python -m harness.cli.main``: the same as the ``frugalbench`` command."""

from .main.main import main

main()
