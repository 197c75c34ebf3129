"""``python -m ragtune.cli`` runs the command line."""

from ragtune.cli.app import main

main()
