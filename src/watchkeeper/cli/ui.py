"""``watchkeeper ui``: the dashboard alone, without the model server."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from watchkeeper.cli._common import open_registry, settings
from watchkeeper.cli.serve import LOCAL_HOSTS
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.ui import create_app


def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the dashboard (overview, models, features, alerts, audit) at /ui."""
    with open_registry(ctx) as registry:
        secured = TokenStore(registry.engine).configured()
    if not secured and host not in LOCAL_HOSTS:
        typer.echo(f"no API tokens configured: listening on 127.0.0.1 only, not {host} "
                   "(create one with `watchkeeper tokens create --role admin`)",
                   err=True)  # fmt: skip
        host = "127.0.0.1"
    elif not secured:
        typer.echo("no API tokens configured: the dashboard is open to local callers", err=True)
    typer.echo(f"watchkeeper dashboard on http://{host}:{port}/ui")
    uvicorn.run(create_app(settings(ctx)), host=host, port=port, log_level=log_level,
                access_log=False)  # fmt: skip
