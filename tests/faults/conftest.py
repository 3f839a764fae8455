"""Fault-injection tests: real ``watchkeeper serve`` processes (one process group each, killed at
teardown) and the registries they serve. Traffic goes to 127.0.0.1 only."""

from tests.security.conftest import iris_registry, kill_group, serve  # noqa: F401
from tests.security.test_database_down import relayed_postgres  # noqa: F401
