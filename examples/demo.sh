#!/usr/bin/env bash
# `make demo`: the whole flow on the embedded defaults, in ./var of this checkout.
# SQLite database, the bundled sample dumps, two sample subscribers in different
# time zones, one mailer cycle delivering into a local Maildir, an HTML preview.
# Safe to re-run: known dumps are recognised, subscribers are updated, and a
# digest already sent for a day is not sent again.
set -euo pipefail
cd "$(dirname "$0")/.."
digest=.venv/bin/digest
export DIGEST_CONFIG=examples/demo.toml

# The demo acts at tomorrow 20:00 UTC, a time both readers' send hours have
# passed, as if the mailer had been running since they subscribed today.
read -r subscribed send_at < <(.venv/bin/python - <<'PY'
from datetime import UTC, datetime, time, timedelta
now = datetime.now(UTC)
tomorrow = datetime.combine(now.date() + timedelta(days=1), time(20), UTC)
print(now.isoformat(timespec="seconds"), tomorrow.isoformat())
PY
)

echo "== creating (or migrating) the database"
$digest db upgrade

echo "== ingesting the sample dumps"
$digest ingest examples/dumps/*.txt examples/hf_daily_papers.json

# `digest subscribe` exits 1 when the address is already subscribed exactly so
# (a re-run of the demo); anything else is a real failure.
subscribe() { $digest subscribe "$@" || [ $? -eq 1 ]; }

echo "== subscribing two sample readers"
subscribe ada@example.org --topic "KV cache" --topic "speculative decoding" \
    --timezone Europe/Berlin --hour 8 --confirmed --now "$subscribed"
subscribe grace@example.org --topic "reinforcement learning" --topic "differential privacy" \
    --timezone America/New_York --hour 7 --confirmed --now "$subscribed"

echo "== preview: what ada will get at $send_at (nothing is sent or recorded)"
$digest preview ada@example.org --now "$send_at" --format html --out var/preview-ada.html

echo "== one mailer cycle at $send_at"
$digest send --now "$send_at"

echo
echo "Messages (Maildir, readable by any mail client): $(pwd)/var/maildir/new/"
ls -1 var/maildir/new | sed 's/^/  /'
echo "Rendered digest for ada: $(pwd)/var/preview-ada.html"
echo "Next: 'source .venv/bin/activate', then 'digest status', 'digest run' for the daemon;"
echo "README, From demo to production, for what to change before mailing real readers."
