"""``python -m fpgac`` is the ``fpgac`` command."""

from fpgac.cli import main

main()
