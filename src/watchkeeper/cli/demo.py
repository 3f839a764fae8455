"""``watchkeeper demo``: the whole loop, narrated, on the embedded default."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from watchkeeper.cli._common import settings
from watchkeeper.demo.story import run_demo


def demo(
    ctx: typer.Context,
    fast: Annotated[bool, typer.Option(help="Shorter days (for tests).")] = False,
    keep_running: Annotated[bool, typer.Option(help="Keep serving when the story ends.")]
    = False,
    port: Annotated[int | None, typer.Option(help="Port (default: a free one).")] = None,
    report: Annotated[Path, typer.Option(help="Where the HTML report goes.")] = Path(
        "watchkeeper-demo-report.html"
    ),
) -> None:  # fmt: skip
    """Train, serve, drift, alert, retrain, gate, roll out and catch a bad release — in a few
    minutes, with everything in the state folder afterwards for you to explore."""
    console = Console()
    home = settings(ctx).home / "demo"  # its own state, fresh each time
    if home.exists():
        shutil.rmtree(home)
    outcome = run_demo(home, fast=fast, port=port, report=report, keep_running=keep_running,
                       console=console)  # fmt: skip
    wk = f"watchkeeper --home {home}"
    console.print(
        f"\n[bold]done in {outcome.seconds:.0f} s[/]: {outcome.requests:,} requests "
        f"({outcome.failed} failed, all from the broken release's canary), production is "
        f"v{outcome.production}. Its state is in {home}; explore it:\n"
        f"  {wk} models show churn            # versions, gate reports, lineage\n"
        f"  {wk} deploy history churn         # every rollout step and why\n"
        f"  {wk} retrain runs churn           # the retraining run and its gate\n"
        f"  {wk} monitor alerts --closed      # what the monitors saw\n"
        f"  {wk} serve                        # then open http://127.0.0.1:8080/ui\n"
        f"  and open {outcome.report} in a browser"
    )  # fmt: skip
