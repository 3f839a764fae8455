"""Settings: one object, read from ``WATCHKEEPER_*`` variables and an optional ``watchkeeper.toml``.

Precedence, highest first: explicit keyword arguments, environment variables, the TOML file
(``WATCHKEEPER_CONFIG`` or ``./watchkeeper.toml``), defaults. Nothing here is global: build a
``Settings`` once at start-up and pass it down.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from watchkeeper.errors import Detail, InvalidInput

ENV_PREFIX = "WATCHKEEPER_"
_TOML_SECTION = "watchkeeper"
_TABLES = ("monitors", "retraining")  # top-level TOML tables kept whole, one per model
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def refuse_unknown(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    """Refuse a ``[where]`` table's keys that are not settings, naming each (a typo is never
    silently ignored)."""
    unknown = [k for k in data if k not in known]
    if unknown:
        raise InvalidInput(
            f"[{where}]: unknown setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(known))}",
            details=[Detail(f"{where}.{k}", "unknown setting") for k in unknown],
        )


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s``.

    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    """
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise InvalidInput(f"'{text}' is not a duration: use e.g. 90d, 12h, 30m")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where watchkeeper keeps its state.

    ``home`` anchors the embedded defaults: ``sqlite:///{home}/watchkeeper.db`` for metadata,
    ``{home}/artifacts`` for model files, ``{home}/logbook`` for prediction records.
    """

    home: Path = field(default_factory=lambda: Path(".watchkeeper"))
    database_url: str | None = None
    artifact_url: str | None = None
    logbook_url: str | None = None
    user: str = field(default_factory=lambda: _current_user())
    monitors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retraining: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # How long live statistics and monitor results are kept (the scheduler prunes daily): a
    # duration such as 35d, or "off" (watchkeeper.registry.retention).
    retention: str = "35d"

    def __post_init__(self) -> None:
        if not isinstance(self.home, Path):  # accept a str, as people will pass one
            object.__setattr__(self, "home", Path(self.home))
        if str(self.retention).strip().lower() != "off":
            try:
                parse_duration(str(self.retention))
            except InvalidInput as exc:
                raise InvalidInput(f"retention: {exc.message}") from exc

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.resolve() / 'watchkeeper.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or str(self.home.resolve() / "artifacts")

    @property
    def resolved_logbook_url(self) -> str:
        return self.logbook_url or str(self.home.resolve() / "logbook")

    def to_env(self) -> dict[str, str]:
        """The ``WATCHKEEPER_*`` variables that make :meth:`load` in another process see the
        same stores and user (the monitor and retraining tables come from the same TOML file)."""
        values = {"home": str(self.home.resolve()), "database_url": self.database_url,
                  "artifact_url": self.artifact_url, "logbook_url": self.logbook_url,
                  "user": self.user}  # fmt: skip
        return {f"{ENV_PREFIX}{k.upper()}": v for k, v in values.items() if v}

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from the TOML file, then the environment, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = config_file or Path(env.get(f"{ENV_PREFIX}CONFIG", "watchkeeper.toml"))
        if path.is_file():
            values.update(_read_toml(path))
        known = {f.name for f in fields(cls)}
        for name in known - set(_TABLES):
            key = f"{ENV_PREFIX}{name.upper()}"
            if key in env and env[key] != "":
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown setting(s) {', '.join(unknown)} in {path}")
        if "home" in values:
            values["home"] = Path(values["home"])
        return cls(**values)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    section = data.get(_TOML_SECTION, data)
    if not isinstance(section, dict):
        raise InvalidInput(f"[{_TOML_SECTION}] in {path} must be a table")
    values = {k: v for k, v in section.items() if not isinstance(v, dict)}
    for name in _TABLES:
        tables = data.get(name, {})
        if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
            raise InvalidInput(f"[{name}] in {path} must hold one [{name}.NAME] table per model")
        if tables:
            values[name] = tables
    return values
