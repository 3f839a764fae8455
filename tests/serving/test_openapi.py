"""The OpenAPI document: valid, generated from the routes the app serves, and honest about them.

Against a real server on a socket: the served document passes ``openapi_spec_validator``, lists
exactly the (method, path) pairs the app routes (dashboard pages and catch-all 404 routes
excepted, by the rule below), every listed operation is really routed, and the bodies it answers
match the schemas documented for their status.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_schema_validator import validate as validate_schema
from openapi_spec_validator import validate as validate_spec
from starlette.routing import BaseRoute, Mount, Route

from tests.serving.conftest import Live
from watchkeeper.serving import openapi
from watchkeeper.serving.app import ServeOptions, create_app

# Path values used to call every operation: mutations go to a model that does not exist, so
# they are refused (404 or 400) and the module's registry stays as it was.
READ_VALUES = {"model": "iris", "name": "iris", "v": "1", "version": "1", "ref": "1",
               "alias": "nosuch"}  # fmt: skip
WRITE_VALUES = READ_VALUES | {"name": "nosuch"}


def _router(app: Any) -> Any:
    """The Starlette app inside the server's ASGI wrappers (origin guard, prediction routes)."""
    while not hasattr(app, "routes"):
        app = getattr(app, "app", None) or app.fallback
    return app


def _routed(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """Every (method, path) the router answers, but for the stated exclusions: pages under
    ``/ui`` (the dashboard, for a browser) and ``{…:path}`` catch-alls (a protocol-shaped 404
    for paths nothing serves). HEAD is implied by GET."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            out |= _routed(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            path = prefix + route.path
            if path == "/ui" or path.startswith("/ui/") or ":path}" in path:
                continue
            out |= {(m, path) for m in route.methods or () if m != "HEAD"}
    return out


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}


@pytest.fixture(scope="module")
def doc(live: Live) -> dict[str, Any]:
    r = live.client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    return dict(r.json())


# answered by serving/fast.py before the router (the calls below prove each is served), written
# out here so the document is not checked against the generator's own table
FAST_ROUTES = {
    ("POST", "/v1/models/{model}:predict"),
    ("POST", "/invocations"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{v}/infer"),
}


def test_the_served_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate_spec(doc)
    assert doc["openapi"].startswith("3.1")


def test_every_route_the_app_serves_is_documented(live: Live, doc: dict[str, Any]) -> None:
    app = create_app(live.settings, ServeOptions())  # the same routes as the live server's
    served = _routed(_router(app).routes) | FAST_ROUTES
    assert _documented(doc) == served
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "x-undescribed" not in op, f"{method.upper()} {path} has no OPERATIONS entry"
    # the routes issue 20 found missing from the hand-written document
    for method, path in [
        ("POST", "/v1/feedback"),
        ("GET", "/api/v1/deployments"),
        ("POST", "/api/v1/deployments/{name}/promote"),
        ("POST", "/api/v1/models/{name}/versions/{version}/stage"),
        ("PUT", "/api/v1/models/{name}/aliases/{alias}"),
        ("DELETE", "/api/v1/models/{name}/aliases/{alias}"),
        ("POST", "/api/v1/models/{name}/rollback"),
        ("GET", "/v2/models/{name}/versions/{v}"),
    ]:
        assert (method, path) in served
    assert len(served) >= 37


def _resolved(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components beside it, so ``#/components/...`` resolves."""
    return {**schema, "components": doc["components"]}


def _call(live: Live, method: str, path: str) -> Any:
    values = READ_VALUES if method == "GET" else WRITE_VALUES
    url = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)
    body = None if method in ("GET", "DELETE") else {}
    return live.client.request(method, url, json=body)


def test_every_documented_operation_is_routed_and_answers_as_documented(
    live: Live, doc: dict[str, Any]
) -> None:
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            r = _call(live, method.upper(), path)
            where = f"{method.upper()} {path} -> {r.status_code} {r.text[:200]}"
            assert r.status_code != 405, where
            assert "no such route" not in r.text, where
            if r.status_code == 404:  # a handler's not-found, not the router's plain one
                assert r.headers["content-type"].startswith("application/json"), where
            answer = op["responses"].get(str(r.status_code))
            assert answer is not None, f"status not documented: {where}"
            content = answer.get("content", {}).get("application/json")
            if content is not None and r.headers["content-type"].startswith("application/json"):
                validate_schema(r.json(), _resolved(doc, content["schema"]))
                checked += 1
    assert checked >= 30  # bodies checked against their schema, not only status codes


def test_predictions_answer_as_documented(live: Live, doc: dict[str, Any]) -> None:
    """The prediction routes' success bodies (the sweep above only reaches their errors)."""
    X = live.X.head(3)
    tensors = [{"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()}
               for c in X.columns]  # fmt: skip
    calls = [
        ("/v1/models/{model}:predict", "/v1/models/iris:predict",
         {"instances": X.to_dict(orient="records")}),
        ("/invocations", "/invocations", {"dataframe_split": X.to_dict(orient="split")}),
        ("/v2/models/{name}/infer", "/v2/models/iris/infer", {"inputs": tensors}),
        ("/v2/models/{name}/versions/{v}/infer", "/v2/models/iris/versions/1/infer",
         {"inputs": tensors}),
    ]  # fmt: skip
    for template, url, body in calls:
        r = live.client.post(url, json=body)
        assert r.status_code == 200, (url, r.text)
        content = doc["paths"][template]["post"]["responses"]["200"]["content"]
        validate_schema(r.json(), _resolved(doc, content["application/json"]["schema"]))


def test_a_wrong_schema_would_be_caught(live: Live, doc: dict[str, Any]) -> None:
    """The check above can fail: the model listing does not match a version's schema."""
    listing = live.client.get("/api/v1/models").json()
    with pytest.raises(Exception, match="is not of type 'object'"):
        validate_schema(listing, _resolved(doc, {"$ref": "#/components/schemas/ModelVersion"}))


def test_docs_page_lists_every_operation(live: Live, doc: dict[str, Any]) -> None:
    page = live.client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    rows = re.findall(r"<tr><td><code>(\w+)</code></td><td><code>(.*?)</code>", page.text)
    assert set(rows) == _documented(doc)
    assert '<a href="/openapi.json">' in page.text


async def _endpoint(request: Any) -> Any:
    raise AssertionError("never called")


def test_generation_follows_the_routes_not_the_table() -> None:
    """A route without an entry is listed and marked; an entry nothing serves is left out;
    mounts are walked; the dashboard and catch-alls are not API; convertors are dropped."""
    routes: list[BaseRoute] = [
        Route("/healthz", _endpoint, methods=["GET"]),
        Route("/extra/{n:int}", _endpoint, methods=["GET", "POST"]),
        Mount("/api", routes=[Route("/inner", _endpoint, methods=["PUT"])]),
        Route("/ui/models/{name}", _endpoint, methods=["GET"]),
        Route("/v2/{rest:path}", _endpoint, methods=["GET"]),
    ]
    doc = openapi.document(routes)
    validate_spec(doc)
    expected = {("GET", "/healthz"), ("GET", "/extra/{n}"), ("POST", "/extra/{n}"),
                ("PUT", "/api/inner"), *openapi.PREDICTION_ROUTES}  # fmt: skip
    assert _documented(doc) == expected
    assert doc["paths"]["/extra/{n}"]["get"]["x-undescribed"] is True
    assert doc["paths"]["/extra/{n}"]["get"]["parameters"][0]["name"] == "n"
    assert "x-undescribed" not in doc["paths"]["/healthz"]["get"]
    assert "/api/v1/models" not in doc["paths"]  # in the table, but not served here


def test_docs_page_escapes_what_it_lists() -> None:
    doc = openapi.document([Route("/<b>{x}", _endpoint, methods=["GET"])])
    page = openapi.html(doc)
    assert "<b>" not in page
    assert "<code>/&lt;b&gt;{x}</code>" in page
