"""``python -m frostline``: the ``frostline`` command."""

from .cli import main

main()
