"""``watchkeeper monitor``: run checks on a logbook window, compare two files, list alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from watchkeeper.cli._common import new_app, open_registry, print_json, settings, table
from watchkeeper.cli.logbook import parse_duration
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.checks import Window, compare
from watchkeeper.monitoring.drift import count_window
from watchkeeper.monitoring.html import render_report, report_summary
from watchkeeper.monitoring.results import CheckResult, by_status
from watchkeeper.monitoring.runner import CHECKS, MonitorSpec, run_monitor, window_counts
from watchkeeper.notify import AlertSink, LogSink, WebhookSink, deliver_all
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.registry import read_table

app = new_app("Monitor models: data quality, drift, performance; alerts.")

FailOn = Annotated[
    str,
    typer.Option(
        help="Exit 3 when a check fails ('fail'), an alert opens ('alert'), or never ('never')."
    ),  # fmt: skip
]
EXIT_CHECK_FAILED = 3


@app.command()
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    window: Annotated[str, typer.Option(help="Window length: 1h, 1d, 30m...")] = "1h",
    version: Annotated[int | None, typer.Option(help="Version (default: production).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 (default: now).")] = None,
    webhook: Annotated[list[str] | None, typer.Option(help="POST alert changes here.")] = None,
    fail_on: FailOn = "never",
    multivariate: Annotated[
        bool, typer.Option(help="Also run the domain-classifier check on the training data.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check one window of NAME's logbook; store the results; open and close alerts."""
    _check_fail_on(fail_on)
    checks = (*CHECKS, "multivariate") if multivariate else CHECKS
    spec = MonitorSpec(model=name, window=parse_duration(window), version=version, checks=checks)
    stop = _parse_end(end)
    sinks: list[AlertSink] = [LogSink(), *(WebhookSink(url) for url in webhook or [])]
    with open_registry(ctx) as registry:
        outcome = run_monitor(
            spec, registry=registry, logbook=Logbook(settings(ctx).resolved_logbook_url),
            store=MonitoringStore(registry.engine), end=stop,
            live=LiveStatsStore(registry.engine),
        )  # fmt: skip
    deliver_all(sinks, outcome.alerts)
    if as_json:
        print_json(outcome.to_dict())
    else:
        typer.echo(f"{name} v{outcome.window.version}: {outcome.rows} rows, "
                   f"{outcome.labelled} labelled, {outcome.window.start:%F %T} – "
                   f"{outcome.window.end:%F %T} UTC")  # fmt: skip
        _results_table(list(outcome.results))
    failed = bool(outcome.failed) if fail_on == "fail" else bool(outcome.alerts.opened)
    if fail_on != "never" and failed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("compare")
def compare_files(
    reference: Annotated[Path, typer.Argument(help="Reference data (CSV or Parquet).")],
    current: Annotated[Path, typer.Argument(help="Current data (CSV or Parquet).")],
    fail_on: FailOn = "never",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report to this file.")
    ] = None,
) -> None:
    """Drift between two files, no registry needed (for notebooks and CI)."""
    _check_fail_on(fail_on)
    ref, cur = read_table(reference), read_table(current)
    now = datetime.now(UTC)
    result = compare(ref, cur, window=Window(current.stem, None, now, now))
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(f"{len(ref)} reference rows vs {len(cur)} current rows; drifted: "
                   f"{', '.join(result.drift.drifted) or 'none'}")  # fmt: skip
        _results_table(list(result.results))
    if html is not None:
        profile = result.profile
        summary = {"model": current.stem, "reference": f"{reference.name} ({len(ref)} rows)",
                   "current": current.name, "rows": len(cur)}  # fmt: skip
        page = render_report(
            title=f"watchkeeper: {current.name} vs {reference.name}", summary=summary,
            results=result.results, reference=profile, current_counts=count_window(profile, cur),
            drift=result.drift, quality=result.quality,
        )  # fmt: skip
        _write_html(html, page, err=as_json)
    if fail_on != "never" and result.failed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def report(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    window: Annotated[str, typer.Option(help="Logbook window drawn against the reference.")] = "1h",
    since: Annotated[str, typer.Option(help="History shown over time: 7d, 24h...")] = "7d",
    version: Annotated[int | None, typer.Option(help="Version (default: the latest results')")]
    = None,
) -> None:  # fmt: skip
    """Write a self-contained HTML report of NAME from its stored results (no network needed)."""
    now = datetime.now(UTC)
    with open_registry(ctx) as registry:
        store = MonitoringStore(registry.engine)
        history = store.series(name, since=now - parse_duration(since))
        latest = store.latest(name)
        wanted = version or max((r.version for r in latest if r.version is not None), default=None)
        logbook = Logbook(settings(ctx).resolved_logbook_url)
        profile, counts, rows = window_counts(
            registry, logbook, name, wanted, now - parse_duration(window), now
        )
    summary = report_summary(name, wanted, latest, rows)
    page = render_report(title=f"watchkeeper: {name}", summary=summary, results=latest,
                         reference=profile, current_counts=counts, history=history)  # fmt: skip
    _write_html(out, page)


def _write_html(path: Path, page: str, *, err: bool = False) -> None:
    path.write_text(page, encoding="utf-8")
    size = path.stat().st_size
    typer.echo(f"wrote {path} ({size / 1e6:.1f} MB)", err=err)


@app.command()
def alerts(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    closed: Annotated[bool, typer.Option(help="Include closed alerts.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Open (or all) alerts, newest first."""
    with open_registry(ctx) as registry:
        found = MonitoringStore(registry.engine).alerts(name, open_only=not closed)
    if as_json:
        print_json([{**a.__dict__, "opened_at": a.opened_at.isoformat()} for a in found])
        return
    table("alerts", ["id", "status", "opened", "message"],
          [(a.id, a.status, f"{a.opened_at:%F %T}", a.message) for a in found])  # fmt: skip


def _results_table(results: list[CheckResult]) -> None:
    rows = [
        (r.check, r.feature or "*", r.statistic,
         "-" if r.value is None else f"{r.value:.4g}",
         "-" if r.threshold is None else f"{r.threshold:.4g}", r.status)
        for r in results
    ]  # fmt: skip
    counts = by_status(results)
    table(
        ", ".join(f"{k} {v}" for k, v in counts.items() if v),
        ["check", "feature", "statistic", "value", "threshold", "status"],
        rows,
    )


def _check_fail_on(value: str) -> None:
    if value not in ("never", "fail", "alert"):
        raise InvalidInput(f"--fail-on must be never, fail or alert, not '{value}'")


def _parse_end(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"--end '{text}' is not an ISO-8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
