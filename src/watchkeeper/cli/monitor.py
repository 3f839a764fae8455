"""``watchkeeper monitor``: run checks on a logbook window, compare two files, list alerts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from watchkeeper.cli._common import (
    new_app,
    open_registry,
    parse_pairs,
    print_json,
    progress_steps,
    settings,
    table,
)
from watchkeeper.config import parse_duration
from watchkeeper.errors import CheckFailed, InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.drift import count_window
from watchkeeper.monitoring.html import render_report
from watchkeeper.monitoring.results import CheckResult, by_status
from watchkeeper.monitoring.spec import MonitorSpec, declared_monitors
from watchkeeper.notify import AlertSink, LogSink, WebhookSink, deliver_all
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.registry import read_table
from watchkeeper.watch.runner import MonitorRun, model_report, run_monitor

if TYPE_CHECKING:
    import pandas as pd

    from watchkeeper.watch.compare import Chunk, ChunkedComparison

app = new_app("Monitor models: data quality, drift, performance; alerts.")

FailOn = Annotated[
    str,
    typer.Option(
        help="Exit 3 when a check fails ('fail'), an alert opens ('alert'), or never ('never')."
    ),  # fmt: skip
]


@app.command()
def run(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Model name.")] = None,
    run_all: Annotated[
        bool, typer.Option("--all", help="Run every monitor declared in watchkeeper.toml.")
    ] = False,
    window: Annotated[
        str | None, typer.Option(help="Window: 1h, 1d, 30m... (default: declared, else 1h)")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Version (default: production).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 (default: now).")] = None,
    webhook: Annotated[list[str] | None, typer.Option(help="POST alert changes here.")] = None,
    fail_on: FailOn = "never",
    multivariate: Annotated[
        bool, typer.Option(help="Also run the domain-classifier check on the training data.")
    ] = False,
    concept: Annotated[
        bool, typer.Option(help="Also check for concept drift against the training data.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:  # fmt: skip
    """Check one window of NAME's logbook; store the results; open and close alerts.

    A monitor declared in watchkeeper.toml ([monitors.NAME]) gives the defaults; options given
    here override them."""
    _check_fail_on(fail_on)
    declared = declared_monitors(settings(ctx))
    if run_all == (name is not None):
        raise InvalidInput("give a model NAME or --all, not both or neither")
    names = [name] if name is not None else sorted(declared)
    if not names:
        raise InvalidInput("no monitors are declared: add [monitors.NAME] to watchkeeper.toml")
    stop = _parse_end(end)
    outcomes = []
    with open_registry(ctx) as registry:
        for model in names:
            spec = _spec(declared.get(model) or MonitorSpec(model=model), window, version,
                         multivariate=multivariate, concept=concept)  # fmt: skip
            with progress_steps(f"{model}") as step:
                outcome = run_monitor(
                    spec, registry=registry, logbook=Logbook(settings(ctx).resolved_logbook_url),
                    store=MonitoringStore(registry.engine), end=stop,
                    live=LiveStatsStore(registry.engine), progress=step,
                )  # fmt: skip
            sinks: list[AlertSink] = [LogSink(), *(WebhookSink(url) for url in
                                                   (*spec.webhooks, *(webhook or [])))]  # fmt: skip
            deliver_all(sinks, outcome.alerts)
            outcomes.append(outcome)
            if not as_json:
                _print_run(outcome)
    if as_json:
        print_json(outcomes[0].to_dict() if name is not None else [o.to_dict() for o in outcomes])
    if fail_on == "fail":
        failed = any(o.failed for o in outcomes)
    else:
        failed = any(o.alerts.opened for o in outcomes)
    if fail_on != "never" and failed:
        what = "a check failed" if fail_on == "fail" else "an alert opened"
        raise CheckFailed(f"{what} (--fail-on {fail_on})")


def _spec(base: MonitorSpec, window: str | None, version: int | None, *,
          multivariate: bool, concept: bool) -> MonitorSpec:  # fmt: skip
    extra = tuple(c for c, on in (("multivariate", multivariate), ("concept", concept))
                  if on and c not in base.checks)  # fmt: skip
    return replace(
        base,
        window=parse_duration(window) if window is not None else base.window,
        version=version if version is not None else base.version,
        checks=(*base.checks, *extra),
    )


def _print_run(outcome: MonitorRun) -> None:
    typer.echo(f"{outcome.window.model} v{outcome.window.version}: {outcome.rows} rows, "
               f"{outcome.labelled} labelled, {outcome.window.start:%F %T} – "
               f"{outcome.window.end:%F %T} UTC")  # fmt: skip
    _results_table(list(outcome.results))
    typer.echo(f"checked {outcome.rows} rows in {outcome.seconds:.2f} s "
               f"({outcome.rows_per_second:,.0f} rows/s)", err=True)  # fmt: skip


@app.command("list")
def list_monitors(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The monitors declared in watchkeeper.toml."""
    declared = declared_monitors(settings(ctx))
    rows = [(m.model, _duration(m.window), _duration(m.interval), ", ".join(m.checks),
             len(m.webhooks)) for m in declared.values()]  # fmt: skip
    if as_json:
        print_json([dict(zip(("model", "window", "every", "checks", "webhooks"), row,
                             strict=True)) for row in rows])  # fmt: skip
        return
    table("monitors", ["model", "window", "every", "checks", "webhooks"], rows)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@app.command("compare")
def compare_files(
    reference: Annotated[Path, typer.Argument(help="Reference data (CSV or Parquet).")],
    current: Annotated[Path, typer.Argument(help="Current data (CSV or Parquet).")],
    chunk_size: Annotated[
        int | None,
        typer.Option(metavar="N", help="Compare CURRENT in successive chunks of N rows."),
    ] = None,
    chunks: Annotated[
        int | None, typer.Option(metavar="K", help="Compare CURRENT in K equal chunks.")
    ] = None,
    chunk_by: Annotated[
        str | None,
        typer.Option(metavar="COLUMN:PERIOD",
                     help="Compare CURRENT period by period of the time column COLUMN; PERIOD "
                     "a duration (6h, 1d, 2w) or day, week, month, quarter, year."),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(metavar="[FEATURE=]METHOD",
                     help="Drift test for every feature it fits, or for FEATURE; repeatable "
                     "(wasserstein, ks, psi, jensenshannon, chisquare)."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(metavar="[FEATURE=]VALUE",
                     help="Fixed drift threshold (alpha for p-value tests) instead of a "
                     "calibrated one, for every feature or for FEATURE; repeatable."),
    ] = None,
    fit: Annotated[
        str | None,
        typer.Option(metavar="FIT", help="How calibrated thresholds are fitted: lognormal "
                     "(default), chi2, normal."),
    ] = None,
    fail_on: FailOn = "never",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report to this file.")
    ] = None,
) -> None:  # fmt: skip
    """Drift and data quality of CURRENT against REFERENCE, whole or chunk by chunk; no
    registry needed (for notebooks and CI).

    The signature is inferred from REFERENCE, so the data-quality checks run too."""
    from watchkeeper.monitoring.drift import DriftPolicy
    from watchkeeper.watch.compare import compare

    _check_fail_on(fail_on)
    bare_methods, methods = _split_options(method, "method")
    bare_thresholds, thresholds = _split_options(threshold, "threshold")
    if len(bare_thresholds) > 1:
        raise InvalidInput("give --threshold VALUE once (or FEATURE=VALUE per feature)")
    policy = DriftPolicy(method=methods, threshold={k: _number(v) for k, v in thresholds.items()})
    ref, cur = read_table(reference), read_table(current)
    chunked = any(option is not None for option in (chunk_size, chunks, chunk_by))
    with progress_steps(f"{current.name} vs {reference.name}") as step:
        step("comparing")
        start = time.perf_counter()
        found = compare(
            ref, cur, chunk_size=chunk_size, chunks=chunks, chunk_by=chunk_by, policy=policy,
            method=bare_methods or None, fit=fit, name=current.stem,
            threshold=_number(bare_thresholds[0]) if bare_thresholds else None,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    if as_json:
        print_json(found.to_dict() if chunked else found.chunks[0].comparison.to_dict())
    elif chunked:
        _chunks_table(found.chunks)
    else:
        only = found.chunks[0].comparison
        typer.echo(f"{len(ref)} reference rows vs {len(cur)} current rows; drifted: "
                   f"{', '.join(only.drift.drifted) or 'none'}")  # fmt: skip
        _results_table(list(only.results))
    moving = sorted({name for chunk in found.chunks
                     for name in chunk.comparison.drift.reference_moves})  # fmt: skip
    if moving and not as_json:
        typer.echo(f"the reference itself moves in {', '.join(moving)}: their thresholds come "
                   "from contiguous reference chunks, not shuffled ones")  # fmt: skip
    typer.echo(f"compared {len(cur)} rows in {len(found.chunks)} chunk(s) in {seconds:.2f} s "
               f"({len(cur) / max(seconds, 1e-9):,.0f} rows/s)", err=True)  # fmt: skip
    if html is not None:
        _write_html(html, _compare_report(found, reference, current, cur), err=as_json)
    if fail_on != "never" and found.failed:
        bad = sum(chunk.status == "fail" for chunk in found.chunks)
        where = f" in {bad} of {len(found.chunks)} chunks" if chunked else ""
        raise CheckFailed(f"{current.name} failed a check against {reference.name}{where} "
                          f"(--fail-on {fail_on})")  # fmt: skip


def _split_options(items: list[str] | None, what: str) -> tuple[list[str], dict[str, str]]:
    """Bare values and FEATURE=VALUE pairs of a repeatable option."""
    bare = [item.strip() for item in items or () if "=" not in item]
    return bare, parse_pairs([item for item in items or () if "=" in item], what)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidInput(f"--threshold {text!r} is not a number") from exc


def _chunks_table(chunks: Sequence[Chunk]) -> None:
    rows = [
        (c.label, c.rows, f"{c.comparison.drift.drift_share:.2f}", ", ".join(c.drifted) or "-",
         c.comparison.quality.status if c.comparison.quality is not None else "-", c.status)
        for c in chunks
    ]  # fmt: skip
    failed = sum(c.status == "fail" for c in chunks)
    table(f"{len(chunks)} chunks, {failed} failing",
          ["chunk", "rows", "drift share", "drifted", "quality", "status"], rows)  # fmt: skip


def _compare_report(found: ChunkedComparison, reference: Path, current: Path,
                    cur: pd.DataFrame) -> str:  # fmt: skip
    """One HTML report: a summary row per chunk, the last chunk's distributions, every result
    (and drift over time when the chunks are periods of a time column)."""
    last = found.chunks[-1]
    summary: dict[str, Any] = {
        "model": current.stem, "reference": f"{reference.name} ({found.reference_rows} rows)",
        "current": current.name, "rows": len(cur),
    }  # fmt: skip
    if len(found.chunks) > 1:
        summary["chunks"] = f"{len(found.chunks)} ({found.chunking}); distributions: {last.label}"
        for chunk in found.chunks:
            drifted = ", ".join(chunk.drifted) or "none"
            quality = chunk.comparison.quality.status if chunk.comparison.quality else "-"
            summary[f"{chunk.label} ({chunk.rows} rows)"] = (
                f"{chunk.status}: drifted {drifted}; quality {quality}")  # fmt: skip
    timed = found.chunking.startswith("chunk_by")
    return render_report(
        title=f"watchkeeper: {current.name} vs {reference.name}", summary=summary,
        results=found.results, reference=found.profile, drift=last.comparison.drift,
        current_counts=count_window(found.profile, cur.iloc[last.positions]),
        quality=last.comparison.quality, history=found.results if timed else (),
    )  # fmt: skip


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
    with open_registry(ctx) as registry:
        logbook = Logbook(settings(ctx).resolved_logbook_url)
        page = model_report(registry, logbook, name, window=parse_duration(window),
                            since=parse_duration(since), version=version)  # fmt: skip
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
