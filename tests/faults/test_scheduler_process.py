"""``watchkeeper serve`` runs its scheduler in a supervised child process: heavy monitor, batch
and retraining work never runs on the serving process, a dead scheduler comes back, and a dead
server leaves no scheduler acting behind it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.processes import wait_for
from tests.security.conftest import Served, iris_registry
from watchkeeper.registry.leases import Lease, LeaseStore
from watchkeeper.scheduler import LEASE

ROW = {"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                      "petal_width": 0.2}]}  # fmt: skip


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name, or None if gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields


def _holder_pid(lease: Lease | None) -> int | None:
    """The pid in a live lease's holder name (``host-pid-hex``)."""
    if lease is None or lease.expires_at <= datetime.now(UTC):
        return None
    return int(lease.holder.rsplit("-", 2)[1])


def _leader(home: Path) -> Callable[[], int | None]:
    registry = iris_registry(home)
    store = LeaseStore(registry.engine)
    return lambda: _holder_pid(store.get(LEASE))


def test_the_scheduler_runs_in_a_child_process_at_a_lower_priority(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """Promise: the scheduler (monitors, batch jobs, retraining) never runs on the serving
    process: `serve` starts it as its own child, niced by 10."""
    leader = _leader(tmp_path / "home")
    served = serve("--scheduler-interval", "0.2", scheduler=True)
    pid = wait_for(leader, 120, "the scheduler to take its lease")
    assert pid != served.proc.pid
    fields = _stat(pid)
    assert fields is not None
    assert int(fields[1]) == served.proc.pid  # its parent is the server
    own, child = _stat(served.proc.pid), fields
    assert own is not None
    assert int(child[16]) - int(own[16]) == 10  # nice, relative to the server's
    assert httpx.post(served.url + "/v1/models/iris:predict", json=ROW).status_code == 200


def test_a_killed_scheduler_is_restarted_while_serving_goes_on(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """Promise: a scheduler process that dies (SIGKILL) is started again and takes the lease
    back once it expires; predictions are answered throughout."""
    leader = _leader(tmp_path / "home")
    served = serve("--scheduler-interval", "0.2", scheduler=True)
    first = wait_for(leader, 120, "the scheduler to take its lease")
    os.kill(first, signal.SIGKILL)

    def answered_and_led_again() -> int | None:
        answer = httpx.post(served.url + "/v1/models/iris:predict", json=ROW, timeout=30)
        assert answer.status_code == 200, answer.text
        pid = leader()
        return pid if pid is not None and pid != first else None

    second = wait_for(answered_and_led_again, 120, "a new scheduler to lead")
    assert _stat(second) is not None
    assert "exited with status -9" in served.output()


def test_a_killed_server_leaves_no_scheduler_behind(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """Promise: if the server is killed outright (SIGKILL, no chance to clean up), its
    scheduler stops by itself and hands the lease over at once, rather than acting on for a
    server that no longer exists."""
    leader = _leader(tmp_path / "home")
    served = serve("--scheduler-interval", "0.2", scheduler=True)
    pid = wait_for(leader, 120, "the scheduler to take its lease")
    served.proc.kill()  # the server alone, not its process group
    served.proc.wait(30)
    wait_for(lambda: _stat(pid) is None, 60, "the orphaned scheduler to stop")
    assert leader() is None  # released on the way out, not left to expire
