"""Rendering throughput: complete digest messages per second, template to wire bytes.

Measures, in one run on the same views:

- `fast`: `Renderer.message_bytes` — templates with CSS inlined once at load,
  the per-paper texts cached (the steady state of a real run, where thousands
  of digests share a few dozen papers), MIME bytes written by `digest.email.mime`;
- `fast_uncached`: the same with the per-paper cache emptied before every
  message (the worst case: no two digests share a paper);
- `serialise_only_*`: the MIME step alone, stdlib vs `digest.email.mime`, for scale;
- `naive`: the pipeline it replaces — the template with a plain <style>
  block, CSS inlined per email with premailer, then
  `EmailMessage.as_bytes()` (stdlib serialisation).

Each variant runs several rounds; medians are reported, from wall-clock time
and from process CPU time (the machine is shared and noisy; CPU time is closer
to what one dedicated core would do). Usage:

    PYTHONPATH=. python bench/render.py [--papers 10] [--rounds 5] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import premailer

from digest.config import SenderSettings, Settings
from digest.email import mime
from digest.email.render import Renderer
from digest.values import DigestView
from tests.render_views import sample_view
from tests.stdlib_message import build_email_message

TOPIC_SETS = [
    ("LLM agents",),
    ("LLM agents", "Efficient inference"),
    ("Multimodal models", "Efficient inference"),
    ("LLM agents", "Multimodal models", "Efficient inference"),
]


def make_views(count: int, papers: int) -> list[DigestView]:
    """`count` different digests: other recipients, topics and papers (rotating over 30)."""
    views = []
    for i in range(count):
        base = sample_view(
            30, topics=TOPIC_SETS[i % len(TOPIC_SETS)], email=f"reader{i}@example.org", digest_id=i
        )
        start = (i * 7) % 30
        chosen = (base.papers * 2)[start : start + papers]
        views.append(replace(base, papers=tuple(sorted(chosen, key=lambda c: -c.score))))
    return views


def measure(
    render: Callable[[DigestView], bytes], views: list[DigestView], rounds: int, seconds: float
) -> dict[str, float]:
    wall_rates: list[float] = []
    cpu_rates: list[float] = []
    for _ in range(rounds):
        done = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds:
            for view in views:
                render(view)
            done += len(views)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        wall_rates.append(done / wall)
        cpu_rates.append(done / cpu)
    return {
        "msgs_per_s_wall": round(statistics.median(wall_rates), 1),
        "msgs_per_s_cpu": round(statistics.median(cpu_rates), 1),
        "ms_per_msg_cpu": round(1000 / statistics.median(cpu_rates), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)

    settings = Settings(sender=SenderSettings(address="digest@example.org"))
    views = make_views(120, args.papers)

    fast = Renderer(settings)

    def uncached(view: DigestView) -> bytes:
        fast._card_cache.clear()
        return fast.message_bytes(view)

    naive = Renderer(settings, inline_css=False)

    def naive_message(view: DigestView) -> bytes:
        html = premailer.Premailer(
            naive.html(view), disable_validation=True, cssutils_logging_level=logging.CRITICAL
        ).transform()
        envelope = naive.envelope(view)
        return build_email_message(envelope, naive.text(view), html).as_bytes()

    prepared = {id(v): (fast.envelope(v), fast.text(v), fast.html(v)) for v in views}

    def stdlib_serialise_only(view: DigestView) -> bytes:
        envelope, text, html = prepared[id(view)]
        return build_email_message(envelope, text, html).as_bytes()

    def fast_serialise_only(view: DigestView) -> bytes:
        envelope, text, html = prepared[id(view)]
        return mime.build_message_bytes(envelope, text, html)

    for render in (fast.message_bytes, naive_message):  # warm up: imports, caches
        for view in views[:12]:
            render(view)

    sizes = sorted(len(fast.message_bytes(v)) for v in views)
    html_sizes = sorted(len(fast.html(v).encode()) for v in views)
    results = {
        "papers_per_digest": args.papers,
        "distinct_views": len(views),
        "message_bytes_median": sizes[len(sizes) // 2],
        "html_bytes_median": html_sizes[len(html_sizes) // 2],
        "fast": measure(fast.message_bytes, views, args.rounds, args.seconds),
        "fast_uncached": measure(uncached, views, args.rounds, args.seconds),
        "naive": measure(naive_message, views[:24], args.rounds, args.seconds),
        # Serialisation alone, for scale: the issue measured stdlib as_bytes() at
        # ~2.5 ms per message on a quiet machine.
        "serialise_only_stdlib": measure(stdlib_serialise_only, views, args.rounds, args.seconds),
        "serialise_only_fast": measure(fast_serialise_only, views, args.rounds, args.seconds),
    }
    for variant in ("fast", "fast_uncached"):
        results[f"{variant}_vs_naive_cpu"] = round(
            results[variant]["msgs_per_s_cpu"] / results["naive"]["msgs_per_s_cpu"], 1
        )
        results[f"{variant}_vs_naive_wall"] = round(
            results[variant]["msgs_per_s_wall"] / results["naive"]["msgs_per_s_wall"], 1
        )
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
