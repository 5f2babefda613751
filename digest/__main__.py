"""`python -m digest` runs the CLI (used by tests that start real processes)."""

from digest.cli import main

main()
