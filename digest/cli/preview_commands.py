"""`digest preview`: the email one subscriber would get now, without recording or sending."""

from __future__ import annotations

import tempfile
import webbrowser
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from digest.cli.app import app
from digest.cli.options import ConfigOption, NowOption, parse_now, settings_from, store_from
from digest.email.render import Renderer
from digest.errors import BadInput
from digest.links import load_secret
from digest.outbox import view_for_plan
from digest.planner import PlanReport, plan_due


class PreviewFormat(StrEnum):
    html = "html"
    text = "text"
    eml = "eml"


FormatOption = Annotated[
    PreviewFormat,
    typer.Option("--format", "-f", help="html (a file), text (stdout) or eml (the raw message)."),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Write here. Default: html/eml to a temp file (path printed), text to stdout.",
        dir_okay=False,
        show_default=False,
    ),
]
OpenOption = Annotated[bool, typer.Option("--open", help="Open the result in the browser.")]


@app.command("preview")
def preview(
    email: Annotated[str, typer.Argument(help="The subscriber's address.")],
    config: ConfigOption = None,
    now: NowOption = None,
    fmt: FormatOption = PreviewFormat.html,
    out: OutOption = None,
    open_it: OpenOption = False,
) -> None:
    """Render what EMAIL would receive at --now; writes nothing to the database, sends nothing.

    If their digest is not due at that time, shows what a digest planned then would
    hold. If nothing would be sent, says why, with the closest papers when none matched.
    """
    settings = settings_from(config)
    moment = parse_now(now)
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    out_console = Console(highlight=False, soft_wrap=True, markup=False)
    with store_from(settings) as store, store.sessions() as session:
        report = plan_due(
            session, settings, now=moment, email=email, dry_run=True, near_misses=True
        )
        if not report.planned:
            why = _reason(report)
            if not why.startswith(("not due", "paused")):
                out_console.print(f"nothing would be sent to {email}: {why}")
                return
            err.print(f"note: {why}; showing what a digest planned now would hold")
            report = plan_due(
                session,
                settings,
                now=moment,
                email=email,
                dry_run=True,
                ignore_schedule=True,
                near_misses=True,
            )
            if not report.planned:
                out_console.print(f"nothing would be sent to {email}: {_reason(report)}")
                return
        plan = report.planned[0]
        if plan.status == "skipped":
            out_console.print(f"nothing would be sent to {plan.email}: {plan.reason}")
            if plan.near_misses:
                out_console.print("closest papers (score, topic, why not):")
                for miss in plan.near_misses:
                    why = f"{miss.topic_label}: {miss.reason}"
                    out_console.print(f"  {miss.score:6.3f}  {miss.title}  [{why}]")
            return
        view = view_for_plan(session, plan, settings, load_secret(settings.web))

    renderer = Renderer(settings)
    data: bytes
    if fmt is PreviewFormat.html:
        data = renderer.html(view).encode("utf-8")
    elif fmt is PreviewFormat.text:
        data = renderer.text(view).encode("utf-8")
    else:
        data = renderer.message_bytes(view)

    if out is None and fmt is PreviewFormat.text and not open_it:
        typer.echo(data.decode("utf-8"), nl=False)
        return
    if out is None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept for the user to open
            prefix="digest-preview-",
            suffix=f".{'txt' if fmt is PreviewFormat.text else fmt.value}",
            delete=False,
        )
        with handle:
            handle.write(data)
        path = Path(handle.name)
    else:
        try:
            out.write_bytes(data)
        except OSError as exc:
            raise BadInput(f"--out {out}: {exc.strerror}") from None
        path = out
    err.print(f"{len(view.papers)} paper(s) for {view.email} ({view.period})")
    typer.echo(str(path.resolve()))
    if open_it:
        webbrowser.open(path.resolve().as_uri())


def _reason(report: PlanReport) -> str:
    return report.skipped[0][1] if report.skipped else "nothing is due"
