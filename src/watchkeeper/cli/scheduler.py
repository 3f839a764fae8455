"""``watchkeeper scheduler``: the rollout controller and declared monitors, as a singleton."""

from __future__ import annotations

import logging
import signal
from typing import Annotated

import typer

from watchkeeper.cli._common import open_registry, settings
from watchkeeper.errors import InvalidInput
from watchkeeper.scheduler import Scheduler, SchedulerOptions


def scheduler(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 1.0,
    lease_ttl: Annotated[
        float, typer.Option(help="Seconds before a silent scheduler's lease can be taken.")
    ] = 10.0,
    monitors: Annotated[
        bool, typer.Option(help="Run the monitors declared in watchkeeper.toml.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run rollouts and monitors until stopped; only one scheduler acts at a time (a lease in
    the database), and another takes over within --lease-ttl if it dies."""
    if interval <= 0 or lease_ttl <= interval:
        raise InvalidInput("need --interval > 0 and --lease-ttl > --interval")
    with open_registry(ctx):  # a database problem is a one-line error here
        pass
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    options = SchedulerOptions(interval=interval, lease_ttl=lease_ttl, monitors=monitors)
    loop = Scheduler(settings(ctx), options)
    signal.signal(signal.SIGTERM, lambda *_: loop.request_stop())
    typer.echo(f"watchkeeper scheduler {options.holder}: every {interval:g} s, "
               f"lease {lease_ttl:g} s")  # fmt: skip
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:  # running jobs get a moment to record how they ended, then the lease goes
        loop.shutdown(timeout=15.0)
