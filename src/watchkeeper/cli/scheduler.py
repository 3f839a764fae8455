"""``watchkeeper scheduler``: the rollout controller and declared monitors, as a singleton."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Annotated

import typer

from watchkeeper.cli._common import open_registry, settings
from watchkeeper.errors import InvalidInput
from watchkeeper.scheduler import Scheduler, SchedulerOptions
from watchkeeper.scheduler_process import PARENT_ENV


def scheduler(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 1.0,
    lease_ttl: Annotated[
        float, typer.Option(help="Seconds before a silent scheduler's lease can be taken.")
    ] = 10.0,
    monitors: Annotated[
        bool, typer.Option(help="Run the monitors declared in watchkeeper.toml.")
    ] = True,
    nice: Annotated[
        int, typer.Option(help="CPU niceness to add (0-19): heavy jobs yield to serving.")
    ] = 0,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run rollouts and monitors until stopped; only one scheduler acts at a time (a lease in
    the database), and another takes over within --lease-ttl if it dies."""
    if interval <= 0 or lease_ttl <= interval:
        raise InvalidInput("need --interval > 0 and --lease-ttl > --interval")
    if not 0 <= nice <= 19:
        raise InvalidInput(f"--nice must be within 0..19, not {nice}")
    if log_level.upper() not in logging.getLevelNamesMapping():
        raise InvalidInput(f"--log-level: unknown level '{log_level}'")
    with open_registry(ctx):  # a database problem is a one-line error here
        pass
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    options = SchedulerOptions(interval=interval, lease_ttl=lease_ttl, monitors=monitors)
    loop = Scheduler(settings(ctx), options)
    signal.signal(signal.SIGTERM, lambda *_: loop.request_stop())
    if nice:
        os.nice(nice)
    _stop_with_parent(loop)
    typer.echo(f"watchkeeper scheduler {options.holder}: every {interval:g} s, "
               f"lease {lease_ttl:g} s")  # fmt: skip
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:  # running jobs get a moment to record how they ended, then the lease goes
        loop.shutdown(timeout=15.0)


def _stop_with_parent(loop: Scheduler) -> None:
    """Started by ``watchkeeper serve``: stop (and hand the lease over) once that server is
    gone, even if it was killed outright and could not stop us."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            if loop.stopping.wait(1.0):
                return
        logging.getLogger("watchkeeper.scheduler").warning(
            "the server (pid %s) is gone: the scheduler stops", parent
        )
        loop.request_stop()

    threading.Thread(target=watch, name="wk-parent-watch", daemon=True).start()
