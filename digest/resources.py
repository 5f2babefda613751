"""Where the non-Python files (templates, migrations) live.

In a source checkout or editable install they sit at the repository's top
level; a wheel carries them inside the package under `_data/`. Both layouts are
looked up here so no other module has to know which one it runs from.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"digest is installed without its {name}/ folder")


def templates_dir() -> Path:
    """The Jinja2 templates folder."""
    return _find("templates")


def migrations_dir() -> Path:
    """The alembic script folder."""
    return _find("alembic")
