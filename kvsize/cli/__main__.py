"""``python -m kvsize.cli``: the same as the ``kvsize`` command."""

from kvsize.cli import main

main()
