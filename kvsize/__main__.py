"""``python -m kvsize``: the same as the ``kvsize`` command."""

from kvsize.cli import main

main()
