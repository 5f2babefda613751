"""The `digest` command line: a Typer app, one module per group of commands.

Each command module registers itself on `app` when imported; add new ones to
the import list below (one line each, so merges stay easy).
"""

import digest.cli.db_commands
import digest.cli.embed_commands
import digest.cli.feedback_commands
import digest.cli.ingest_commands
import digest.cli.match_commands
import digest.cli.outbox_commands
import digest.cli.plan_commands
import digest.cli.preview_commands
import digest.cli.run_commands
import digest.cli.status_commands
import digest.cli.subscriber_commands
import digest.cli.web_commands  # noqa: F401  (each import registers commands)
from digest.cli.app import app, main

__all__ = ["app", "main"]
