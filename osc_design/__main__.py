"""``python -m osc_design`` runs the command line."""

from .cli import main

main()
