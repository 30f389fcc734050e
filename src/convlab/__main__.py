"""``python -m convlab``: the same as the ``convlab`` command."""

from convlab.cli import main

main()
