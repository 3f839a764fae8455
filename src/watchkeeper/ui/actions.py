"""``/ui/actions/...``: what a deployer can do from the dashboard, each a form POST.

Every action checks the session, the CSRF value and the origin, then the role, and calls the
same function as the API and the CLI (``Registry.promote``/``rollback``, ``Rollouts.start``/
``promote``/``abort``, ``MonitoringStore.acknowledge``) as the person logged in, so the audit
log names them. The result is shown on a page that links back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from watchkeeper.errors import Detail, Forbidden, InvalidInput, Unauthorized, WatchkeeperError
from watchkeeper.registry import Registry
from watchkeeper.registry.refs import parse_version
from watchkeeper.ui.pages import Pages
from watchkeeper.ui.session import form, form_allowed, principal, safe_next
from watchkeeper.ui.sources import Sources

Run = Callable[[Sources, Registry, Request, dict[str, str]], str]
REASON = "from the dashboard"


def _int(fields: dict[str, str], name: str) -> int:
    text = fields.get(name, "")
    if not text.isdigit():
        raise InvalidInput(f"'{name}' must be a number", details=[Detail(name, "not an int")])
    return parse_version(text)  # ASCII digits within the schema's range, else a clean 400


def rollback(sources: Sources, registry: Registry, request: Request, f: dict[str, str]) -> str:
    name = request.path_params["name"]
    version = registry.rollback(name, reason=f.get("reason") or REASON)
    return f"{name}: production is now v{version.version} (rolled back)."


def promote(sources: Sources, registry: Registry, request: Request, f: dict[str, str]) -> str:
    name, version, stage = request.path_params["name"], _int(f, "version"), f.get("stage", "")
    found = registry.promote(name, version, stage, reason=f.get("reason") or REASON)
    return f"{name}: v{found.version} is now {found.stage}."


def start(sources: Sources, registry: Registry, request: Request, f: dict[str, str]) -> str:
    name, version, mode = request.path_params["name"], _int(f, "version"), f.get("mode", "")
    d = sources.rollouts(registry).start(name, mode, version, reason=f.get("reason") or "")
    return f"{name}: {d.mode} of v{d.candidate} started ({d.share:.0%})."


def step(sources: Sources, registry: Registry, request: Request, f: dict[str, str]) -> str:
    name = request.path_params["name"]
    d = sources.rollouts(registry).promote(name, reason=f.get("reason") or "")
    where = "promoted to production" if d.state == "promoted" else f"at {d.share:.0%}"
    return f"{name}: {d.mode} of v{d.candidate} {where}."


def abort(sources: Sources, registry: Registry, request: Request, f: dict[str, str]) -> str:
    name = request.path_params["name"]
    d = sources.rollouts(registry).abort(name, reason=f.get("reason") or "")
    return f"{name}: {d.mode} of v{d.candidate} aborted; production answers every request."


def acknowledge(sources: Sources, registry: Registry, request: Request, f: dict[str, str]) -> str:
    alert = sources.monitoring.acknowledge(request.path_params["alert_id"], registry.actor)
    return f"Alert {alert.id} ({alert.model}) acknowledged by {alert.acknowledged_by}."


def routes(dashboard: Pages) -> list[Route]:
    def endpoint(run: Run, heading: str) -> Callable[[Request], Awaitable[Response]]:
        async def act(request: Request) -> Response:
            try:
                who = await principal(dashboard.auth, request)
                fields = await form(request)
            except WatchkeeperError as exc:
                return dashboard.unavailable(request, exc)
            back = safe_next(fields.get("back"))
            if who is None:
                refused: WatchkeeperError = Unauthorized("log in first: no valid session")
                return Response(refused.message, status_code=refused.http_status)
            if not form_allowed(who, request, fields):
                refused = Forbidden("refused: the form is stale or forged (CSRF check failed)")
            elif not who.allows("deployer"):
                refused = Forbidden(f"'{who.name}' has role {who.role}; this needs deployer")
            else:
                registry = dashboard.sources.registry
                registry = registry.acting_as(who.name) if who.authenticated else registry
                try:
                    done = await asyncio.to_thread(run, dashboard.sources, registry, request,
                                                   fields)  # fmt: skip
                except WatchkeeperError as exc:
                    return dashboard.message(request, who, ok=False, heading=f"{heading} failed",
                                             message=exc.message, back=back,
                                             status=exc.http_status)  # fmt: skip
                finally:
                    dashboard.sources.cache.clear()
                return dashboard.message(request, who, ok=True, heading=heading, message=done,
                                         back=back)  # fmt: skip
            return dashboard.message(request, who, ok=False, heading=f"{heading} refused",
                                     message=refused.message, back=back,
                                     status=refused.http_status)  # fmt: skip

        return act

    models, deployments = "/ui/actions/models/{name}", "/ui/actions/deployments/{name}"
    table: list[tuple[str, Run, str]] = [
        (f"{models}/rollback", rollback, "Roll back"),
        (f"{models}/promote", promote, "Change stage"),
        (f"{deployments}/start", start, "Start rollout"),
        (f"{deployments}/promote", step, "Promote rollout"),
        (f"{deployments}/abort", abort, "Abort rollout"),
        ("/ui/actions/alerts/{alert_id:int}/acknowledge", acknowledge, "Acknowledge alert"),
    ]
    return [Route(path, endpoint(run, heading), methods=["POST"])
            for path, run, heading in table]  # fmt: skip
