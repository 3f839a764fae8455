"""Settings: one object, read from ``WATCHKEEPER_*`` variables and an optional ``watchkeeper.toml``.

Precedence, highest first: explicit keyword arguments, environment variables, the TOML file
(``WATCHKEEPER_CONFIG`` or ``./watchkeeper.toml``), defaults. Nothing here is global: build a
``Settings`` once at start-up and pass it down.

Every table of the file is checked against the dataclass it becomes (``Settings`` here,
``MonitorSpec`` and ``RetrainSpec`` where they are declared) by pydantic, through
:func:`validate`: a mistake is one ``InvalidInput`` naming the file and the key's path, e.g.
``watchkeeper.toml: monitors.churn.max_error_rate: Input should be a valid number``. pydantic is
imported only when a value has to be converted or checked, never by ``import watchkeeper.config``.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import os
import re
import tomllib
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast, get_type_hints

from watchkeeper.errors import Detail, InvalidInput, WatchkeeperError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

ENV_PREFIX = "WATCHKEEPER_"
_TOML_SECTION = "watchkeeper"
_TABLES = ("monitors", "retraining")  # top-level TOML tables kept whole, one per model
T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s``.

    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    """
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise InvalidInput(f"'{text}' is not a duration: use e.g. 90d, 12h, 30m")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


class _DurationText:
    """Marks a ``timedelta`` field that a table writes as ``"90d"``: pydantic reads this hook
    (and only imports its core then)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import PydanticCustomError, core_schema

        def to_timedelta(value: Any) -> timedelta:
            if isinstance(value, timedelta):
                return value
            try:
                return parse_duration(value if isinstance(value, str) else repr(value))
            except InvalidInput as exc:
                raise PydanticCustomError(
                    "duration", "{problem}", {"problem": exc.message}
                ) from None

        return core_schema.no_info_plain_validator_function(to_timedelta)


Duration = Annotated[timedelta, _DurationText()]
"""A ``timedelta`` written in a table as ``"90d"``, ``"12h"``, ``"30m"``, ``"2w"`` or ``"45s"``."""


def validate(
    kind: type[T],
    data: Any,
    *,
    where: str,
    source: Path | None = None,
    named: Mapping[str, Any] | None = None,
) -> T:
    """``data`` (a TOML table) as a ``kind`` dataclass, converted and checked by pydantic.

    ``named`` holds the fields the table's name gives (``{"model": "churn"}`` for
    ``[monitors.churn]``); the table itself may not set them. Unknown keys are refused. Any
    problem is one ``InvalidInput`` whose message names ``source``, the key's path below
    ``where`` and what is wrong, with one detail per problem.

    >>> @dataclass
    ... class Window:
    ...     length: Duration = timedelta(hours=1)
    >>> validate(Window, {"length": "2h"}, where="demo")
    Window(length=datetime.timedelta(seconds=7200))
    >>> validate(Window, {"lenght": "2h"}, where="demo")
    Traceback (most recent call last):
    ...
    watchkeeper.errors.InvalidInput: demo.lenght: unknown key; known: length
    """
    from pydantic import ValidationError

    if named and isinstance(data, Mapping):
        if clash := sorted(set(data) & set(named)):
            path, problem = f"{where}.{clash[0]}", "unknown key: the table's name gives it"
            raise _problem(source, [Detail(path, problem)])
        data = {**data, **named}
    try:
        with _in_table(where, source):
            return _adapter(cast(Hashable, kind)).validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise _problem(source, [_detail(kind, where, e) for e in exc.errors()]) from None


@contextmanager
def _in_table(where: str, source: Path | None) -> Iterator[None]:
    """A dataclass's own check (run once each value has its type) as a problem of the table."""
    try:
        yield
    except WatchkeeperError as exc:
        raise _problem(source, [Detail(where or "settings", exc.message)]) from exc


def _problem(source: Path | None, details: list[Detail]) -> InvalidInput:
    """One line for the first problem, naming the file; every problem in the details."""
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    prefix = f"{source}: " if source else ""
    return InvalidInput(f"{prefix}{details[0].field}: {details[0].problem}{more}", details=details)


@functools.cache
def _adapter(kind: Hashable) -> Any:
    """pydantic's validator for ``kind``, built once; dataclasses refuse unknown keys."""
    from pydantic import ConfigDict, TypeAdapter, with_config

    if (
        isinstance(kind, type)
        and dataclasses.is_dataclass(kind)
        and "__pydantic_config__" not in vars(kind)
    ):
        kind = with_config(ConfigDict(extra="forbid"))(kind)
    return TypeAdapter(cast(Any, kind))


def _detail(kind: type[Any], where: str, error: Any) -> Detail:
    """One pydantic error as a detail: the dotted key path (``[i]`` for list items) and the
    problem, saying which keys are known when the key is not one of them."""
    loc = error["loc"]
    path = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    path = path.removeprefix(".")
    if error["type"] != "unexpected_keyword_argument":
        return Detail(path, error["msg"])
    known = _known_keys(kind, loc[:-1])
    return Detail(path, "unknown key" + (f"; known: {', '.join(known)}" if known else ""))


def _known_keys(kind: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys of the dataclass at ``loc`` inside ``kind``, when it is one."""
    for part in loc:
        if not dataclasses.is_dataclass(kind) or isinstance(part, int):
            return []
        kind = get_type_hints(kind).get(part)
    if not dataclasses.is_dataclass(kind):
        return []
    return sorted(f.name for f in fields(kind) if f.init)


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
    source: Path | None = field(default=None, init=False, compare=False)
    """The TOML file these settings were read from (errors in its tables name it)."""

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
        same settings and TOML file (with its monitor and retraining tables)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(home=self.home.resolve(), config=self.source and self.source.resolve())
        return {f"{ENV_PREFIX}{k.upper()}": str(v) for k, v in values.items()
                if v and k not in _TABLES}  # fmt: skip

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
        path = config_file or Path(env.get(f"{ENV_PREFIX}CONFIG", "watchkeeper.toml"))
        source = path if path.is_file() else None
        values = _read_toml(path) if source else {}
        known = {f.name for f in fields(cls) if f.init}
        for name in known - set(_TABLES):
            key = f"{ENV_PREFIX}{name.upper()}"
            if key in env and env[key] != "":
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown setting(s) {', '.join(unknown)}")
        if "home" in values:
            values["home"] = Path(values["home"])
        settings = cls(**values)
        object.__setattr__(settings, "source", source)
        return settings


_STRINGS = {f.name for f in fields(Settings) if f.init and f.name not in _TABLES}
"""The settings, every one a string in the file (``home`` becomes a path)."""


@dataclass(frozen=True, kw_only=True)
class _Tables:
    """The file's per-model tables, each checked in full where it is declared."""

    monitors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retraining: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _is_table(value: object) -> bool:
    return isinstance(value, dict)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _read_toml(path: Path) -> dict[str, Any]:
    """The settings ``path`` sets, and its ``monitors``/``retraining`` tables as they are.

    The settings stand in ``[watchkeeper]``, or at the top before any table. What needs no
    conversion (per-model tables that are tables, settings that are strings: the common case)
    is taken without importing pydantic, which costs about 0.1 s."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    where = _TOML_SECTION if _TOML_SECTION in data else ""
    section = (
        data.pop(_TOML_SECTION)
        if where
        else {k: data.pop(k) for k in list(data) if k not in _TABLES}
    )
    plain = all(name in _TABLES and isinstance(t, dict) and all(map(_is_table, t.values()))
                for name, t in data.items())  # fmt: skip
    if not plain:
        validate(_Tables, data, where="", source=path)
    if not section:
        return data
    if isinstance(section, dict) and all(k in _STRINGS and isinstance(v, str)
                                         for k, v in section.items()):  # fmt: skip
        with _in_table(where, path):  # nothing to convert: pydantic would take them as they are
            given = Settings(**section)
    else:
        given = validate(Settings, section, where=where, source=path)
    return {**data, **{k: getattr(given, k) for k in section}}
