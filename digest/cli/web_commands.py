"""`digest serve` (the web app behind unsubscribe, confirm, manage and view links)
and `digest web secret` (a key for signing those links)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
import uvicorn

from digest.cli.app import app
from digest.cli.options import ConfigOption, settings_from, store_from
from digest.errors import BadInput, ConfigError
from digest.links import new_secret
from digest.web import create_app

web_app = typer.Typer(help="The web links' signing key.", no_args_is_help=True)
app.add_typer(web_app, name="web")


@web_app.command("secret")
def web_secret() -> None:
    """Print a new random key for web.secret (32 random bytes, URL-safe).

    Put it in DIGEST_WEB__SECRET or in web.secret_file (mode 600). Changing the
    key (rotating it) makes every link already sent stop working; do it when a
    key may have leaked.
    """
    typer.echo(new_secret())


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
    with store_from(settings) as store:
        application = create_app(settings, store)  # loads the link secret: fails here if bad
        listen_host = host or settings.web.host
        listen_port = port or settings.web.port
        where = f"http://{listen_host}:{listen_port}"
        sock = _listen(listen_host, listen_port, from_option=host is not None or port is not None)
        typer.echo(f"serving on {where} (links point at {settings.web.base_url})")
        server_config = uvicorn.Config(
            application,
            host=listen_host,
            port=listen_port,
            log_level="info",
            access_log=access_log,
            proxy_headers=True,
            forwarded_allow_ips=settings.web.trusted_proxies,
            server_header=False,
        )
        uvicorn.Server(server_config).run(sockets=[sock])


def _listen(host: str, port: int, *, from_option: bool) -> socket.socket:
    """Bind the listening socket before uvicorn starts.

    uvicorn reports a busy port or an unknown host as log lines around its own
    start-up and shut-down chatter; binding here turns them into one error line
    that names the address and where it came from.
    """
    source = "--host/--port" if from_option else "web.host/web.port"
    error = BadInput if from_option else ConfigError
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise error(f"cannot listen on {host}:{port} ({source}): {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise error(f"cannot listen on {host}:{port} ({source}): {exc.strerror}") from None
    return sock
