#!/usr/bin/env bash
# The README's first quickstart command (`make demo`) runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
digest=.venv/bin/digest
$digest db upgrade
