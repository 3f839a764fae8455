"""``/api/v1/deployments``: the same operations as ``watchkeeper deploy``, over HTTP."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from watchkeeper.errors import Detail, InvalidInput, WatchkeeperError
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.rollout.ab_units import ABLooks
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.rollout.plan import Plan
from watchkeeper.serving.api import Host, field, json_endpoint


def routes(server: Host) -> list[Route]:
    looks: list[ABLooks] = []  # one for the server's life: A/B looks stay incremental

    def rollouts(registry: Registry) -> Rollouts:
        logbook = server.logbook or Logbook(server.settings.resolved_logbook_url)
        if not looks:
            looks.append(ABLooks(logbook))
        return Rollouts(registry, logbook=logbook, ab=looks[0])

    def start(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
        plan_fields = field(body, "plan", dict, default=None) or {}
        try:
            plan = Plan.from_dict(plan_fields)
        except TypeError as exc:
            raise InvalidInput(f"invalid plan: {exc}", details=[Detail("plan", str(exc))]) from exc
        except WatchkeeperError as exc:
            details = [Detail(f"plan.{d.field}", d.problem) for d in exc.details]
            raise InvalidInput(exc.message, details=details) from exc
        d = rollouts(registry).start(
            request.path_params["name"], field(body, "mode", str), field(body, "version", int),
            plan=plan, reason=field(body, "reason", str, default=""),
        )  # fmt: skip
        return d.to_dict()

    def show(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
        return rollouts(registry).status(request.path_params["name"]).to_dict()

    def listing(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
        return [d.to_dict() for d in rollouts(registry).store.all()]

    def promote(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
        reason = field(body, "reason", str, default="")
        return rollouts(registry).promote(request.path_params["name"], reason=reason).to_dict()

    def abort(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
        reason = field(body, "reason", str, default="")
        return rollouts(registry).abort(request.path_params["name"], reason=reason).to_dict()

    def history(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
        return [e.to_dict() for e in rollouts(registry).history(request.path_params["name"])]

    prefix = "/api/v1/deployments"
    return [
        Route(prefix, json_endpoint(server, listing), methods=["GET"]),
        Route(prefix + "/{name}", json_endpoint(server, show), methods=["GET"]),
        Route(prefix + "/{name}", json_endpoint(server, start, status=201), methods=["POST"]),
        Route(prefix + "/{name}/promote", json_endpoint(server, promote), methods=["POST"]),
        Route(prefix + "/{name}/abort", json_endpoint(server, abort), methods=["POST"]),
        Route(prefix + "/{name}/history", json_endpoint(server, history), methods=["GET"]),
    ]
