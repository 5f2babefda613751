"""The `digest` command line: a Typer app, one module per group of commands.

Each command module registers itself on `app` when imported; add new ones to
the import list below.
"""

import digest.cli.match_commands  # registers commands
import digest.cli.subscriber_commands  # noqa: F401  (registers commands)
from digest.cli import db_commands  # noqa: F401  (registers commands)
from digest.cli.app import app, main

__all__ = ["app", "main"]
