"""Every error watchkeeper raises on purpose.

The tree (HTTP status, CLI exit code)::

    WatchkeeperError                  500, exit 1
    ├── NotFound                      404, exit 4
    │   ├── ModelNotFound
    │   ├── VersionNotFound
    │   ├── AliasNotFound
    │   └── AlertNotFound
    ├── Conflict                      409, exit 5
    │   └── NoEarlierProduction       (rollback with nothing to go back to)
    ├── InvalidInput                  400/422, exit 1
    │   ├── InvalidReference          ("churn@" and friends)
    │   ├── InvalidStage
    │   ├── SchemaError               422 (request does not match a signature)
    │   ├── MalformedRequest          (body is not valid JSON/CSV or lacks required fields)
    │   ├── UnsupportedMediaType      415
    │   ├── PayloadTooLarge           413 (body or row count over the limit)
    │   └── UnreadableModel           (the file is not a model we can read)
    │       └── UntrustedTypes        (a skops file holds types nobody trusted)
    ├── CheckFailed                   422, exit 3 (a monitor check or an evaluation gate failed)
    ├── Unauthorized                  401, exit 6 (no or unknown API token)
    ├── Forbidden                     403, exit 6 (the token's role does not allow it)
    ├── MissingDependency             501, exit 1 (a flavor's library is not installed)
    ├── IntegrityError                500, exit 1 (sha256 mismatch: tampered or corrupted)
    ├── StoreUnavailable              503, exit 7 (database or artifact store unreachable)
    ├── ModelNotReady                 503, exit 7 (known model, no loaded version to answer)
    ├── PredictionFailed              500, exit 1 (the model raised or answered wrongly; the
    │                                 client sees a request id, the log the exception)
    ├── PredictionTimeout             504, exit 7 (the model did not answer in time)
    └── SchemaOutdated                503, exit 7 (run ``watchkeeper db upgrade``)

Each class carries its HTTP status and CLI exit code (see ``HTTP_STATUS`` and ``EXIT_CODE``);
callers look them up by class, never by comparing messages. Foreign exceptions are translated
at one boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE_CHARS = 1000  # an error message, which may quote what the client sent
MAX_DETAIL_CHARS = 200  # a detail's field or problem, often a client's own name for something
MAX_DETAILS = 100


def clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was: a client's value echoed
    in an error never makes the error large.

    >>> clip("x" * 500, 10)
    'xxxxxxxxxx… (500 chars)'
    """
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


@dataclass(frozen=True)
class Detail:
    """One field-level problem: the field (and row, for a one-row problem) and what is wrong.
    Both strings are clipped (``clip``): they often name what the client sent."""

    field: str
    problem: str
    row: int | None = None

    def __post_init__(self) -> None:
        for name in ("field", "problem"):
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > MAX_DETAIL_CHARS:
                object.__setattr__(self, name, clip(value))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"field": self.field, "problem": self.problem}
        if self.row is not None:
            out["row"] = self.row
        return out


class WatchkeeperError(Exception):
    """Base class of every error raised on purpose by watchkeeper.

    The message is clipped to ``MAX_MESSAGE_CHARS`` and the details to ``MAX_DETAILS`` (the last
    one saying how many more there were): this is the one place every error body, log line and
    CLI message passes, so no client value is ever echoed whole.
    """

    code = "watchkeeper_error"

    def __init__(self, message: str, *, details: list[Detail] | None = None) -> None:
        message = clip(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.details = list(details or [])
        if len(self.details) > MAX_DETAILS:
            more = len(self.details) - MAX_DETAILS + 1
            self.details[MAX_DETAILS - 1 :] = [Detail("*", f"{more} more problems not listed")]

    @property
    def http_status(self) -> int:
        return http_status(type(self))

    @property
    def exit_code(self) -> int:
        return exit_code(type(self))

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": [d.to_dict() for d in self.details],
            }
        }


class NotFound(WatchkeeperError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class AlertNotFound(NotFound):
    code = "alert_not_found"


class Conflict(WatchkeeperError):
    code = "conflict"


class NoEarlierProduction(Conflict):
    code = "no_earlier_production"


class InvalidInput(WatchkeeperError):
    code = "invalid_input"


class InvalidReference(InvalidInput):
    code = "invalid_reference"


class InvalidStage(InvalidInput):
    code = "invalid_stage"


class SchemaError(InvalidInput):
    code = "schema_error"


class MalformedRequest(InvalidInput):
    code = "malformed_request"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class UnreadableModel(InvalidInput):
    code = "unreadable_model"


class UntrustedTypes(UnreadableModel):
    code = "untrusted_types"


class CheckFailed(WatchkeeperError):
    """A check ran and its subject failed it: a monitor check, an evaluation gate."""

    code = "check_failed"


class Unauthorized(WatchkeeperError):
    code = "unauthorized"


class Forbidden(WatchkeeperError):
    code = "forbidden"


class MissingDependency(WatchkeeperError):
    code = "missing_dependency"


class IntegrityError(WatchkeeperError):
    code = "integrity_error"


class StoreUnavailable(WatchkeeperError):
    code = "store_unavailable"


class SchemaOutdated(WatchkeeperError):
    code = "schema_outdated"


class ModelNotReady(WatchkeeperError):
    code = "model_not_ready"


class PredictionFailed(WatchkeeperError):
    code = "prediction_failed"


class PredictionTimeout(WatchkeeperError):
    code = "prediction_timeout"


# The one table: most specific class wins (looked up along the MRO).
HTTP_STATUS: dict[type[WatchkeeperError], int] = {
    WatchkeeperError: 500,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 400,
    SchemaError: 422,
    UnsupportedMediaType: 415,
    PayloadTooLarge: 413,
    CheckFailed: 422,
    Unauthorized: 401,
    Forbidden: 403,
    MissingDependency: 501,
    IntegrityError: 500,
    StoreUnavailable: 503,
    SchemaOutdated: 503,
    ModelNotReady: 503,
    PredictionTimeout: 504,
}

# CLI exit codes (docs/cli.md has the same table). 2 is click's own, for usage mistakes.
EXIT_OK = 0
EXIT_ERROR = 1  # any other error, reported in one line (invalid input, a corrupt file...)
EXIT_USAGE = 2  # unknown command or option, missing argument, bad option value
EXIT_CHECK_FAILED = 3  # a check ran and failed (monitor --fail-on, an evaluation gate)
EXIT_NOT_FOUND = 4  # no such model, version, alias, alert or declared monitor/retraining
EXIT_CONFLICT = 5  # the state does not allow it (already exists, nothing to roll back to...)
EXIT_DENIED = 6  # no or wrong token, role too low, permission denied by the operating system
EXIT_UNAVAILABLE = 7  # the store, the schema or the model cannot be used now: retry or fix it

EXIT_CODE: dict[type[WatchkeeperError], int] = {
    WatchkeeperError: EXIT_ERROR,
    CheckFailed: EXIT_CHECK_FAILED,
    NotFound: EXIT_NOT_FOUND,
    Conflict: EXIT_CONFLICT,
    Unauthorized: EXIT_DENIED,
    Forbidden: EXIT_DENIED,
    StoreUnavailable: EXIT_UNAVAILABLE,
    SchemaOutdated: EXIT_UNAVAILABLE,
    ModelNotReady: EXIT_UNAVAILABLE,
    PredictionTimeout: EXIT_UNAVAILABLE,
}


def _lookup(table: dict[type[WatchkeeperError], int], cls: type[WatchkeeperError]) -> int:
    for klass in cls.__mro__:
        if klass in table:
            return table[klass]
    return table[WatchkeeperError]


def http_status(cls: type[WatchkeeperError]) -> int:
    """HTTP status for an error class.

    >>> http_status(VersionNotFound)
    404
    """
    return _lookup(HTTP_STATUS, cls)


def exit_code(cls: type[WatchkeeperError]) -> int:
    """CLI exit code for an error class.

    >>> exit_code(VersionNotFound), exit_code(NoEarlierProduction), exit_code(SchemaError)
    (4, 5, 1)
    """
    return _lookup(EXIT_CODE, cls)


def missing_dependency(package: str, extra: str) -> MissingDependency:
    """The error for a flavor or feature whose optional library is absent."""
    return MissingDependency(
        f"{package} is not installed; install it with: pip install 'watchkeeper[{extra}]'"
    )
