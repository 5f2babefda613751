"""Headless Chromium for the browser tests: where it is, how it starts, when to skip.

One policy for every browser test: without Debian's chromium + chromium-driver
a local run skips with the install hint, and a CI run (CI set) fails, because
CI installs them (see .ci/run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest


def _find(*names: str, fallback: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return fallback if Path(fallback).exists() else None


CHROMIUM = _find("chromium", "chromium-browser", fallback="/usr/bin/chromium")
CHROMEDRIVER = _find("chromedriver", fallback="/usr/bin/chromedriver")

# Headless, and quiet: without the background-networking flags Chromium keeps
# trying hosts this sandboxed machine cannot reach.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def require_chromium() -> tuple[str, str]:
    """The chromium and chromedriver paths, or skip (locally) / fail (in CI)."""
    if CHROMIUM and CHROMEDRIVER:
        return CHROMIUM, CHROMEDRIVER
    reason = "headless browser test needs Debian's chromium and chromium-driver"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set: install them (see .ci/run)")
    pytest.skip(f"{reason} (apt-get install chromium chromium-driver)")


def chrome_options(profile: Path) -> Any:
    """selenium ChromeOptions for a headless run with a fresh profile folder."""
    from selenium import webdriver

    chromium, _ = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*HEADLESS_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return options
