"""Library versions: recorded when a package is saved, compared when it is loaded."""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

logger = logging.getLogger("watchkeeper.models")


# builds of one library published under other distribution names (same module, same versions)
BUILDS = {"xgboost": ("xgboost", "xgboost-cpu", "xgboost-cu12", "xgboost-cu13")}


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (or of another build of it, see ``BUILDS``)."""
    if distribution == "python":
        return platform.python_version()
    for name in BUILDS.get(distribution, (distribution,)):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions(distributions: Iterable[str]) -> dict[str, str]:
    """Versions of python and each installed distribution (absent ones are left out)."""
    versions: dict[str, str] = {}
    for name in ("python", *distributions):
        version = installed_version(name)
        if version is not None:
            versions[name] = version
    return dict(sorted(versions.items()))


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def log_version_drift(recorded: Mapping[str, str], package: Path) -> list[str]:
    """Log (warning) each library whose major.minor differs from the recorded one.

    Libraries that are not installed are skipped: the flavor raises ``MissingDependency`` when
    it needs them. Returns the names that drifted.
    """
    drifted: list[str] = []
    for name, saved in recorded.items():
        current = installed_version(name)
        if current is not None and major_minor(current) != major_minor(saved):
            drifted.append(name)
            logger.warning(
                "%s was saved with %s %s but %s is installed; predictions may differ",
                package,
                name,
                saved,
                current,
            )
    return drifted
