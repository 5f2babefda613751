"""`digest embed`, and the embedding step that follows `digest ingest`.

Papers are embedded once, after they are stored: a forward pass per paper is
the costly part of the semantic signal, so it runs here with a progress bar
(rate and time left) rather than inside a planning pass.
"""

from __future__ import annotations

from dataclasses import replace

import typer

from digest.cli.app import app
from digest.cli.options import ConfigOption, settings_from, store_from
from digest.cli.progress import progress_bar
from digest.config import Settings
from digest.embed import embed_papers, embed_topics, encoder_for
from digest.errors import ConfigError
from digest.store.database import Store


@app.command("embed")
def embed_command(config: ConfigOption = None) -> None:
    """Embed every stored paper that has no vector yet (the semantic signal); safe to repeat.

    `digest ingest` does this for new papers by itself; run it after turning
    the semantic signal on, or after a change of model (vectors of another
    model are recomputed).
    """
    settings = settings_from(config)
    if settings.semantic.enabled == "off":
        raise ConfigError('the semantic signal is off ([semantic] enabled = "off")')
    on = replace(settings, semantic=replace(settings.semantic, enabled="on"))
    with store_from(settings) as store:
        done, model = embed_stored(store, on)
        encoder = encoder_for(on.semantic)
        if encoder is not None:
            embed_topics(store, encoder)
    typer.echo(
        f"embedded {done} papers with {model}"
        if done
        else f"every stored paper already has a vector by {model}"
    )


def embed_stored(store: Store, settings: Settings) -> tuple[int, str]:
    """Embed what has no vector, with a progress bar on a terminal; (how many, model name).

    Does nothing (0, "") when the semantic signal is off or, with `auto`, not
    installed.
    """
    encoder = encoder_for(settings.semantic)
    if encoder is None:
        return 0, ""
    progress = progress_bar("embedding papers")
    with progress:
        task = progress.add_task("embedding", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        done = embed_papers(store, encoder, batch=settings.semantic.batch_size, on_progress=advance)
    return done, encoder.name
