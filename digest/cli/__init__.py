"""The `digest` command line: a Typer app, one module per group of commands.

Each command module registers itself on `app` when imported; add new ones to
the import list below.
"""

import digest.cli.outbox_commands  # (registers commands)
import digest.cli.plan_commands  # (registers commands)
import digest.cli.preview_commands  # (registers commands)
import digest.cli.subscriber_commands  # (registers commands)
import digest.cli.web_commands  # noqa: F401  (registers commands)
from digest.cli import db_commands  # noqa: F401  (registers commands)
from digest.cli.app import app, main

__all__ = ["app", "main"]
