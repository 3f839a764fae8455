"""The dashboard: pages a team keeps open, mounted at ``/ui`` by ``watchkeeper serve`` and
served alone by ``watchkeeper ui``.

It holds no business logic: pages read the registry, monitoring, rollout and live-statistics
stores, and actions call the same functions as the API and the CLI.
"""

from watchkeeper.ui.app import create_app
from watchkeeper.ui.dashboard import Dashboard

__all__ = ["Dashboard", "create_app"]
