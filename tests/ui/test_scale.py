"""50 models with 30 days of hourly results and a month of per-minute traffic: the pages stay
small and quick because the server aggregates and sends only what is drawn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.ui.conftest import serving
from tests.ui.fleet import name_of, seed_fleet
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.ui import create_app
from watchkeeper.ui.timerange import MAX_POINTS

pytestmark = pytest.mark.slow
MODELS, DAYS = 50, 30


@pytest.fixture(scope="module")
def fleet_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(home=tmp_path_factory.mktemp("fleet"), user="fleet")
    with Registry(settings) as registry:
        seed_fleet(registry, models=MODELS, days=DAYS, now=datetime.now(UTC))
    with serving(create_app(settings)) as url:
        yield url


def _timed(url: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.get(url, timeout=60)
    return response, time.perf_counter() - started


def test_the_overview_of_fifty_models_is_small(fleet_url: str) -> None:
    response, seconds = _timed(f"{fleet_url}/ui/data/overview")
    assert response.status_code == 200
    rows = response.json()["fragments"]["overview-rows"]
    assert rows.count("<tr ") == MODELS
    assert rows.count('data-key="drift"><span class="dot"></span>50% drifted') == 0
    assert rows.count('class="row-fail"') == MODELS // 10  # every tenth model drifts
    assert len(response.content) < 100_000
    assert seconds < 5  # about 0.2 s on the 2-core development machine
    page, _ = _timed(f"{fleet_url}/ui")
    assert page.status_code == 200
    assert page.text.count('<tr class="row-') == MODELS


@pytest.mark.parametrize("span", ["24h", "7d", "30d"])
def test_a_model_with_a_month_of_data_sends_only_what_is_drawn(fleet_url: str, span: str) -> None:
    response, seconds = _timed(f"{fleet_url}/ui/data/models/{name_of(0)}?range={span}")
    assert response.status_code == 200
    body = response.json()
    assert len(response.content) < 150_000
    assert seconds < 10  # about 0.5 s for 30 days on the 2-core development machine
    figures = body["figures"]
    assert len(figures) == 6
    drawn = [t for f in figures.values() for t in f["data"]]
    assert all(len(t["x"]) <= MAX_POINTS for t in drawn)
    requests = next(t for t in figures["chart-traffic"]["data"] if t["name"] == "requests/s")
    inner = [y for y in requests["y"] if y][1:-1]  # the oldest bucket is only partly covered
    assert inner
    assert inner == pytest.approx([1.0] * len(inner))  # 60 a minute, whatever the bucket
    page, _ = _timed(f"{fleet_url}/ui/models/{name_of(0)}?range={span}")
    assert page.status_code == 200
    assert page.text.count('class="plot"') == 6
