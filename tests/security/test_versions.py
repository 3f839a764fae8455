"""Out-of-range version numbers are a clean 4xx / one-line error (issue 16, item 7).

Regression: ``iris@99999999999999999999`` reached SQLite as a bound parameter and raised
``OverflowError`` (a 500 with a traceback); PostgreSQL's INTEGER column overflows past 2**31-1.
Every version number is now checked where references are parsed (``ModelRef.parse``) and where
the store looks a version up by number, whatever path it came by.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.security.conftest import iris_registry
from watchkeeper.cli.main import app

HUGE = "99999999999999999999"
JUST_OVER = str(2**31)  # one past the largest version the schema stores
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
V2_BODY = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in ROW.items()
    ]
}
JSON = {"content-type": "application/json"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    iris_registry(home).close()
    return home


def _is_clean_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "Traceback" not in response.text
    assert "Overflow" not in response.text


@pytest.mark.parametrize("number", [HUGE, JUST_OVER, "1" + "0" * 5000, "²", "١"])
def test_http_out_of_range_versions_are_client_errors(serve, home: Path, number: str) -> None:
    """Management, KServe V1 and Open Inference v2 routes answer 4xx for a version number
    no version can have (too large, or written with non-ASCII digits), and the server keeps
    serving."""
    served = serve(home=home)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        shown = client.get(f"/api/v1/models/iris/versions/{number}")
        _is_clean_client_error(shown)
        assert shown.json()["error"]["code"] == "invalid_reference"
        _is_clean_client_error(
            client.post(
                f"/api/v1/models/iris/versions/{number}/stage",
                json={"stage": "archived"},
                headers=JSON,
            )
        )
        _is_clean_client_error(
            client.put(
                "/api/v1/models/iris/aliases/champion",
                content=f'{{"version": {number}}}',
                headers=JSON,
            )
        )
        infer = client.post(f"/v2/models/iris/versions/{number}/infer", json=V2_BODY)
        _is_clean_client_error(infer)
        _is_clean_client_error(client.get(f"/v2/models/iris/versions/{number}"))
        _is_clean_client_error(
            client.post(f"/v1/models/iris@{number}:predict", json={"instances": [ROW]})
        )
        ok = client.post("/v2/models/iris/versions/1/infer", json=V2_BODY)
        assert ok.status_code == 200, ok.text
    assert "Traceback" not in served.output()


@pytest.mark.parametrize(
    "args",
    [
        ["models", "show", f"iris@{HUGE}"],
        ["models", "show", f"iris@{JUST_OVER}"],
        ["models", "promote", "iris", HUGE, "--to", "archived"],
        ["models", "alias", "iris", HUGE, "champion"],
        ["models", "delete", "iris", HUGE, "--yes"],
        ["models", "history", "iris", "--limit", HUGE],
    ],
    ids=["show", "show-int32", "promote", "alias", "delete", "history-limit"],
)
def test_cli_out_of_range_versions_fail_in_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """The CLI answers an out-of-range version with one line and exit code 1 (no traceback);
    an absurd ``--limit`` is just a large limit."""
    monkeypatch.setenv("WATCHKEEPER_HOME", str(home))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    if args[1] == "history":
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: version ")
    assert "out of range" in result.output
    assert result.output.count("\n") == 1
