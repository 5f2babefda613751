"""The exceptions digest raises on purpose, and the exit code each maps to.

Library code raises these; the shells (CLI, scheduler, web) turn them into one
line of text and an exit code or HTTP status. Anything else escaping is a bug.

    DigestError                 base: "digest refused or could not do this"
     ├── BadInput        (2)    user-supplied data is wrong: a dump, a query,
     │    │                     an address, a CSV row, a CLI value
     │    └── QuerySyntaxError  a topic filter that does not parse (has a caret)
     ├── ConfigError     (3)    the settings file or environment is wrong
     ├── SourceError     (4)    a source could not be read (HTTP, file system)
     └── DeliveryError   (5)    mail could not be handed over (SMTP, Maildir)
"""

from __future__ import annotations


class DigestError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1


class BadInput(DigestError):
    """Data a user gave us is wrong; the message says what and where."""

    exit_code = 2


class QuerySyntaxError(BadInput):
    """A topic filter that does not parse.

    Carries the query and the 0-based character position so shells can draw a
    caret under the offending character.
    """

    def __init__(self, message: str, query: str, position: int) -> None:
        super().__init__(message)
        self.reason = message
        self.query = query
        self.position = position

    def __str__(self) -> str:
        caret = " " * self.position + "^"
        return f"{self.reason} at position {self.position + 1}:\n  {self.query}\n  {caret}"


class ConfigError(DigestError):
    """The configuration (file or environment) is invalid."""

    exit_code = 3


class SourceError(DigestError):
    """A source of dumps failed (unreachable URL, unreadable file, bad reply)."""

    exit_code = 4


class DeliveryError(DigestError):
    """A message could not be handed to the mail system."""

    exit_code = 5
