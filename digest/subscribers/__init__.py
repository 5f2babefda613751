"""Subscribers: who gets digests, on what schedule, about which topics.

Owns the `subscribers` and `topics` rows: subscribing and changing settings,
pausing, unsubscribing, CSV import and export, and the double opt-in message.
Everything a person typed is checked here before a row is touched, and a
problem is a `BadInput` naming the value, so the CLI and the web app only print
it. A stage: may import the base layer (`digest.store`, `digest.config`,
`digest.values`, `digest.errors`) and the parts (`digest.filters` to check
topics, `digest.links` and `digest.mail` for the confirmation message); the
planner imports it (address normalisation), never the other way round.

Modules:

- `manage`        subscribe, confirm, topics, schedule, pause, unsubscribe; the value checks
- `csvfile`       a subscriber list in and out as CSV, all or nothing
- `confirmation`  the double opt-in email with its `/confirm/{token}` link
"""
