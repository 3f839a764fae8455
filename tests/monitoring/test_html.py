"""The HTML report: escaped, drifted features first, every result present, offline."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from jinja2 import UndefinedError
from markupsafe import escape
from typer.testing import CliRunner

from watchkeeper.cli.main import app
from watchkeeper.monitoring.checks import Window, compare
from watchkeeper.monitoring.drift import count_window
from watchkeeper.monitoring.html import _templates, render_report
from watchkeeper.monitoring.profile import profile_frame
from watchkeeper.monitoring.report_data import distribution
from watchkeeper.monitoring.results import CheckResult

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _history() -> list[CheckResult]:
    out = []
    for i in range(6):
        start, end = T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1)
        drift = 0.05 + 0.05 * i
        for check, stat, value, threshold in (
            ("drift", "wasserstein", drift, 0.2),
            ("performance", "accuracy", 0.9 - 0.02 * i, 0.88),
            ("performance", "label_coverage", 0.5 + 0.05 * i, None),
            ("performance", "label_lag_p50_s", 3600.0 * (i + 1), None),
        ):
            feature = "income" if check == "drift" else ""
            status = "fail" if threshold is not None and value > threshold else "ok"
            out.append(CheckResult(model="churn", version=3, window_start=start, window_end=end,
                                   check=check, feature=feature, statistic=stat, value=value,
                                   threshold=threshold, status=status))  # fmt: skip
    return out


def sample_report() -> str:
    """A report on two data sets where ``income`` and ``<script>`` drift and ``plan`` does not."""
    rng = np.random.default_rng(0)
    n = 3000
    ref = pd.DataFrame({"plan": rng.choice(["a", "b", "c"], n), "income": rng.normal(size=n),
                        "<script>": rng.normal(size=n)})  # fmt: skip
    cur = pd.DataFrame({"plan": rng.choice(["a", "b", "c"], n), "income": rng.normal(1, 1, n),
                        "<script>": rng.normal(2, 1, n)})  # fmt: skip
    found = compare(ref, cur, window=Window("churn", 3, T0, T0 + timedelta(hours=1)))
    profile = profile_frame(ref, bins=20)
    return render_report(
        title="churn <v3>", summary={"model": "churn", "version": 3, "rows": n,
                                     "labelled_rows": 120, "window": "last hour"},
        results=found.results, reference=profile, current_counts=count_window(profile, cur),
        drift=found.drift, history=_history(),
    )  # fmt: skip


def test_user_strings_are_escaped() -> None:
    page = sample_report()
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "<title>churn &lt;v3&gt;</title>" in page
    figures = re.search(r'id="wk-figures">(.*?)</script>', page, re.S)
    assert figures is not None
    assert "<" not in figures[1]


def test_drifted_features_come_first() -> None:
    page = sample_report()
    headings = re.findall(r"<h3>(.*?) (?:<span|</h3>)", page)
    assert headings[-1] == "plan"
    assert set(headings[:2]) == {"income", "&lt;script&gt;"}


def test_every_result_is_in_the_table() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=200) for i in range(5)})
    found = compare(ref, ref, window=Window("m", None, T0, T0))
    page = render_report(title="t", summary={"model": "m"}, results=found.results)
    body = page.split('id="results"')[1]
    assert body.count("<tr><td") == len(found.results) == 6
    for result in found.results:
        assert f"<td>{result.feature or '*'}</td><td>{result.statistic}</td>" in body


def test_plotly_is_embedded_once_and_nothing_is_fetched() -> None:
    page = sample_report()
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=[\"']?https?://", page)
    assert page.count("<script>") == 2  # plotly.js and the boot script
    assert page.count("Plotly.newPlot(") == 1


def test_numeric_shares_include_the_tails() -> None:
    profile = profile_frame({"x": [0.0, 1.0, 2.0, 3.0]}, bins=2)
    dist = distribution(profile.features["x"], count_window(profile, {"x": [-5.0, 1.0, 9.0]})["x"])
    assert (dist.labels[0], dist.labels[-1]) == ("< 0", "> 3")
    assert dist.current is not None
    assert sum(dist.current) == 1.0
    assert dist.current[0] == dist.current[-1] == 1 / 3


def test_compare_command_writes_the_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pd.DataFrame({"x": rng.normal(size=500)}).to_csv(tmp_path / "ref.csv", index=False)
    pd.DataFrame({"x": rng.normal(2, 1, 500)}).to_csv(tmp_path / "cur.csv", index=False)
    out = tmp_path / "report.html"
    args = ["monitor", "compare", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"),
            "--html", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert '<span class="badge">drifted</span>' in out.read_text(encoding="utf-8")


HOSTILE = '"><img src=x onerror=alert(1)>'


def test_hostile_strings_are_escaped_everywhere() -> None:
    """A column name, a category, a summary entry and the title all carry markup: the page
    shows it as text (the template escapes), and the charts' JSON holds no ``<`` at all."""
    rng = np.random.default_rng(3)
    n = 500
    ref = pd.DataFrame({HOSTILE: rng.choice([HOSTILE, "b"], n), "x": rng.normal(size=n)})
    cur = pd.DataFrame({HOSTILE: rng.choice([HOSTILE, "b"], n, p=[0.9, 0.1]),
                        "x": rng.normal(size=n)})  # fmt: skip
    found = compare(ref, cur, window=Window(HOSTILE, 1, T0, T0 + timedelta(hours=1)))
    profile = profile_frame(ref, bins=10)
    history = [replace(r, feature=HOSTILE, model=HOSTILE) for r in _history()]
    page = render_report(
        title=HOSTILE, summary={"model": HOSTILE, HOSTILE: HOSTILE}, results=found.results,
        reference=profile, current_counts=count_window(profile, cur), drift=found.drift,
        history=history,
    )  # fmt: skip
    plotly_end = page.index("</script>")  # plotly.js itself is not ours to search
    ours = page[plotly_end:]
    assert "<img" not in ours
    assert HOSTILE not in ours
    escaped = str(escape(HOSTILE))  # the template's escaping
    assert f"<title>{escaped}</title>" in page
    assert f"<h3>{escaped} " in ours  # the feature's card
    assert f"<tr><th>{escaped}</th><td>{escaped}</td></tr>" in ours  # the summary
    figures = re.search(r'id="wk-figures">(.*?)</script>', page, re.S)
    assert figures is not None
    assert "<" not in figures[1]
    assert html.escape(HOSTILE) in json.loads(figures[1])[0]["data"][0]["x"]  # a bar label


def test_a_missing_template_value_is_an_error_not_a_blank() -> None:
    page = _templates().get_template("report.html")
    with pytest.raises(UndefinedError, match="'summary' is undefined"):
        page.render(title="t", plotly_js="")
