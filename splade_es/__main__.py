"""``python -m splade_es`` runs the CLI."""

from splade_es.cli import main

main()
