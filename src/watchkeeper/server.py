"""The server as ``watchkeeper serve`` runs it: the serving app with the dashboard mounted, and
the scheduler beside it in a child process.

This is the one place that composes them. ``serving`` answers requests and knows nothing of the
dashboard or the scheduler; ``ui`` reads the stores through the server it is given; the
scheduler runs monitors, rollouts, batch schedules and retraining in its own process. Each of
them sits below this module, so none imports another for the sake of the whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from watchkeeper.config import Settings
from watchkeeper.scheduler_process import ChildOptions, SchedulerProcess
from watchkeeper.serving import app as serving_app
from watchkeeper.serving import server as serving_server
from watchkeeper.serving.app import ServeOptions
from watchkeeper.ui.dashboard import Dashboard

FACTORY = "watchkeeper.server:app_from_env"  # what each uvicorn worker process calls


def dashboard_routes(server: serving_app.Server) -> Sequence[BaseRoute]:
    """The dashboard's pages under ``/ui``, reading through the model server's stores."""
    return Dashboard(server).routes()


def create_app(settings: Settings | None = None, options: ServeOptions | None = None) -> ASGIApp:
    """The whole server's ASGI app: prediction and management routes plus the dashboard."""
    return serving_app.create_app(settings, options, mount=dashboard_routes)


def app_from_env() -> ASGIApp:
    """The app factory each worker process calls (settings and options travel in the
    environment, see ``watchkeeper.serving.server``)."""
    return create_app(Settings.load(), serving_server.options_from_env())


def serve(
    settings: Settings,
    options: ServeOptions,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str = "info",
    scheduler: ChildOptions | None = None,
) -> None:
    """Run the server until SIGINT/SIGTERM, with the scheduler as a supervised child process
    when ``scheduler`` is given (stopped when the server stops, however it stops)."""
    child = SchedulerProcess(settings, scheduler) if scheduler is not None else None
    if child is not None:
        child.start()
    try:
        serving_server.serve(settings, options, host=host, port=port, workers=workers,
                             log_level=log_level, factory=FACTORY)  # fmt: skip
    finally:
        if child is not None:
            child.stop()
