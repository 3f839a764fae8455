"""``watchkeeper ui``: the dashboard alone, without the model server."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from watchkeeper.cli._common import settings
from watchkeeper.cli.serve import exposure
from watchkeeper.ui import create_app


def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Host name browsers may use besides loopback (repeatable)."),
    ] = None,
) -> None:
    """Serve the dashboard (overview, models, features, alerts, audit) at /ui."""
    exposed = exposure(ctx, host, allowed_host, "the dashboard is")
    typer.echo(f"watchkeeper dashboard on http://{exposed.host}:{port}/ui")
    app = create_app(settings(ctx), allowed_hosts=exposed.allowed_hosts,
                     auth_required=exposed.auth_required)  # fmt: skip
    uvicorn.run(app, host=exposed.host, port=port, log_level=log_level, access_log=False)
