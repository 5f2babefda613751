#!/usr/bin/env bash
# CI: install digest the way an operator does -- `pip install .`, no extras, into a
# plain venv outside the checkout -- and run it on the bundled sample data.
# This is the check that the wheel carries its templates and migrations, and that
# nothing at run time needs a dev tool (pytest, ruff, selenium) or the semantic extra.
# It runs from a temporary directory, so nothing is found by accident in the checkout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d /tmp/digest-plain.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

step() { echo "plain-install: $*"; }

step "pip install . (no extras) into $work/venv"
"$python" -m venv venv
venv/bin/python -m pip install --quiet "$repo"
digest=$work/venv/bin/digest
# A plain install must not have pulled in the dev or semantic extras.
for module in pytest ruff selenium numpy; do
    if venv/bin/python -c "import $module" 2>/dev/null; then
        echo "plain-install: $module is installed, but no extra was asked for" >&2
        exit 1
    fi
done

# SQLite and a Maildir in the temp dir, like the demo's settings (examples/demo.toml).
cat >config.toml <<TOML
database_url = "sqlite:///$work/digest.db"
dumps_dir = "$work/dumps"

[delivery]
backend = "maildir"
maildir_path = "$work/maildir"

[sender]
address = "papers@digest.example"
postal_address = "digest CI: a plain-venv install"

[web]
base_url = "http://127.0.0.1:8080"
secret_file = "$work/web-secret"
TOML
export DIGEST_CONFIG=$work/config.toml

# Fixed times, so the run does not depend on today's date: dumps come in and the
# reader subscribes on one day, and the send is the next evening, past their hour.
ingested=2026-03-02T06:00:00+00:00
send_at=2026-03-03T20:00:00+00:00

step "digest --help"
"$digest" --help >/dev/null
"$digest" --version

step "digest db upgrade"
"$digest" db upgrade
"$digest" db current

step "digest ingest (bundled dumps)"
"$digest" ingest "$repo"/examples/dumps/*.txt "$repo"/examples/hf_daily_papers.json --now "$ingested"

step "digest subscribe"
"$digest" subscribe ada@example.org --topic "KV cache" --topic "speculative decoding" \
    --timezone Europe/Berlin --hour 8 --confirmed --now "$ingested"

step "digest send --dry-run"
"$digest" send --dry-run --now "$send_at" | tee send.out
# The dry run must have planned and rendered ada's digest, and sent nothing.
grep -q '^ada@example.org: .* papers' send.out
if [ -d "$work/maildir" ] && [ -n "$(find "$work/maildir" -type f)" ]; then
    echo "plain-install: send --dry-run delivered mail" >&2
    exit 1
fi
step "ok"
