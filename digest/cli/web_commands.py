"""`digest serve`: the web app behind unsubscribe, confirm, manage and view links."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from digest.cli.app import app
from digest.cli.options import ConfigOption, settings_from, store_from
from digest.web import create_app


@app.command("serve")
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Interface to listen on. Default: web.host (127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, help="Port to listen on. Default: web.port (8080)."
        ),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request. Off by default: request paths carry link tokens.",
        ),
    ] = False,
) -> None:
    """Serve the unsubscribe (RFC 8058 one-click), confirm, manage and view-in-browser pages."""
    settings = settings_from(config)
    store = store_from(settings)
    try:
        application = create_app(settings, store)  # loads the link secret: fails here if bad
        listen_host = host or settings.web.host
        listen_port = port or settings.web.port
        where = f"http://{listen_host}:{listen_port}"
        typer.echo(f"serving on {where} (links point at {settings.web.base_url})")
        uvicorn.run(
            application,
            host=listen_host,
            port=listen_port,
            log_level="info",
            access_log=access_log,
            proxy_headers=True,
            server_header=False,
        )
    finally:
        store.dispose()
