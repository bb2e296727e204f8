"""``python -m casegrid.cli``: the same as the ``casegrid`` command."""

from casegrid.cli import main

main()
