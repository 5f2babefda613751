"""Configuration: what can be set (declarations) and how it is read (TOML, environment).

Owns the `Settings` value every other package is handed: nothing outside this
package reads a config file or a `DIGEST_*` variable. May import only the base
layer (`digest.values`, `digest.errors`) and SQLAlchemy's URL parser; every
other package may import it.

Modules:

- `settings`  the declarations: `setting()`, one dataclass per section, `Settings`,
              and the introspection (`iter_settings`) the loader and the example file use
- `checks`    the value checks the declarations name (`check=check_timezone`, ...)
- `loading`   `load_settings` (defaults → TOML → environment, each value checked)
              and `example_toml`
"""

from __future__ import annotations

from digest.config.loading import DEFAULT_CONFIG_FILE, ENV_PREFIX, example_toml, load_settings
from digest.config.settings import (
    DeliverySettings,
    ScheduleSettings,
    ScoringSettings,
    SemanticSettings,
    SenderSettings,
    Settings,
    SmtpSettings,
    SourceSettings,
    WebSettings,
    iter_settings,
    setting,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "DeliverySettings",
    "ScheduleSettings",
    "ScoringSettings",
    "SemanticSettings",
    "SenderSettings",
    "Settings",
    "SmtpSettings",
    "SourceSettings",
    "WebSettings",
    "example_toml",
    "iter_settings",
    "load_settings",
    "setting",
]
