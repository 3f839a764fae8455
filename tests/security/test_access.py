"""Who may change what: tokens that never switch auth off, the management API out of a web
page's reach, the dashboard's server-side sessions, and the data plane behind tokens on demand.

Every test runs a real ``watchkeeper serve`` process and sends the hostile request itself, to
127.0.0.1 only.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.processes import wait_for
from tests.security.conftest import iris_registry
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.errors import EXIT_CONFLICT
from watchkeeper.registry import Registry
from watchkeeper.registry.tokens import TokenStore

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def _production(home: Path) -> int:
    registry = Registry(Settings(home=home))
    try:
        return int(registry.get("iris@production").version)
    finally:
        registry.close()


def _tokens(home: Path, *roles: str) -> dict[str, str]:
    registry = iris_registry(home, versions=2)
    try:
        store = TokenStore(registry.engine)
        return {role: store.create(f"{role}-bot", role, actor="owner")[1] for role in roles}
    finally:
        registry.close()


def _cli(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"WATCHKEEPER_HOME": str(home)})
    return result.exit_code, result.output


def test_revoking_the_last_token_never_opens_a_server_bound_to_every_interface(
    tmp_path: Path, serve
) -> None:
    """Promise: once a token has existed, a server listening beyond loopback refuses callers
    without a live token, whatever happens to the tokens; revoking the last one needs --force."""
    home = tmp_path / "home"
    tokens = _tokens(home, "admin")
    served = serve("--host", "0.0.0.0", "--without-scheduler", home=home)
    bearer = {"authorization": f"Bearer {tokens['admin']}"}
    assert httpx.get(served.url + "/api/v1/models", headers=bearer).status_code == 200

    code, out = _cli(home, "tokens", "revoke", "1")
    assert code == EXIT_CONFLICT  # the state refuses it (docs/cli.md)
    assert "last live token" in out
    assert "--force" in out
    assert "Traceback" not in out
    assert httpx.get(served.url + "/api/v1/models", headers=bearer).status_code == 200

    code, out = _cli(home, "tokens", "revoke", "1", "--force")
    assert code == 0, out
    assert "no live token is left" in out

    def locked() -> bool:  # the revoked token stops working within the cache time
        return httpx.get(served.url + "/api/v1/models", headers=bearer).status_code == 401

    wait_for(locked, 30, "the revoked token to be refused")
    assert httpx.get(served.url + "/api/v1/models").status_code == 401
    rollback = httpx.post(served.url + "/api/v1/models/iris/rollback", json={})
    assert rollback.status_code == 401
    assert (
        httpx.get(served.url + "/ui", follow_redirects=False)
        .headers["location"]
        .startswith("/ui/login")
    )
    # even with the token table emptied behind its back, a server bound beyond loopback
    # never runs open
    registry = Registry(Settings(home=home))
    with registry.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM dashboard_sessions")
        conn.exec_driver_sql("DELETE FROM api_tokens")
    registry.close()
    assert httpx.get(served.url + "/api/v1/models").status_code == 401


def test_a_web_page_cannot_drive_the_local_management_api(tmp_path: Path, serve) -> None:
    """Promise: with no token (local mode), a cross-site request from a browser changes
    nothing: text/plain and form bodies are refused, a foreign Origin or a cross-site fetch is
    refused; the same call from a non-browser client with JSON succeeds."""
    home = tmp_path / "home"
    iris_registry(home, versions=2).close()
    served = serve("--without-scheduler", home=home)
    stage = served.url + "/api/v1/models/iris/versions/2/stage"
    body = '{"stage": "production"}'
    simple = httpx.post(stage, content=body, headers={"content-type": "text/plain"})
    assert simple.status_code == 415
    assert simple.json()["error"]["details"][0]["field"] == "content-type"
    form = httpx.post(stage, data={"stage": "production"})
    assert form.status_code == 415
    empty = httpx.post(served.url + "/api/v1/models/iris/rollback")  # no body, no type
    assert empty.status_code == 415
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"},
                    {"referer": "https://evil.example/page"},
                    {"sec-fetch-site": "cross-site"}):  # fmt: skip
        refused = httpx.post(stage, content=body,
                             headers={"content-type": "application/json", **headers})  # fmt: skip
        assert refused.status_code == 403, headers
        assert "cross-site" in refused.json()["error"]["message"]
    # a cross-site POST to the dashboard's actions and login is refused the same way
    for path in ("/ui/actions/models/iris/rollback", "/ui/login"):
        action = httpx.post(served.url + path, data={"csrf": "x"},
                            headers={"origin": "https://evil.example"})  # fmt: skip
        assert action.status_code == 403, path
    assert _production(home) == 1
    same_origin = httpx.post(stage, json={"stage": "production"},
                             headers={"origin": served.url})  # fmt: skip
    assert same_origin.status_code == 200, same_origin.text
    assert _production(home) == 2


def test_dns_rebinding_cannot_reach_the_server_under_a_foreign_name(tmp_path: Path, serve) -> None:
    """Promise: a request naming a host that is not allowed (an attacker's name re-pointed at
    127.0.0.1) is refused on every route but the health probes, the dashboard's rollback
    included; a name passed with --allowed-host is served."""
    home = tmp_path / "home"
    iris_registry(home, versions=2).close()
    served = serve("--without-scheduler", "--allowed-host", "models.internal", home=home)
    port = served.url.rsplit(":", 1)[1]
    evil = {"host": f"rebind.evil.example:{port}"}
    with httpx.Client(base_url=served.url, headers=evil) as browser:
        for method, path in (("GET", "/ui"), ("GET", "/api/v1/models"),
                             ("POST", "/v1/models/iris:predict")):  # fmt: skip
            answer = browser.request(method, path, json=ROW if method == "POST" else None)
            assert answer.status_code == 400, (path, answer.text)
            assert "--allowed-host" in answer.json()["error"]["message"]
        rebound = {"origin": f"http://rebind.evil.example:{port}"}
        rollback = browser.post("/ui/actions/models/iris/rollback", data={"csrf": "0" * 64},
                                headers=rebound)  # fmt: skip
        assert rollback.status_code == 400
        assert browser.get("/healthz").status_code == 200  # probes carry a pod's address
    assert _production(home) == 1
    named = httpx.post(served.url + "/v1/models/iris:predict", json=ROW,
                       headers={"host": f"models.internal:{port}"})  # fmt: skip
    assert named.status_code == 200
    for loopback in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        answer = httpx.get(served.url + "/api/v1/models", headers={"host": loopback})
        assert answer.status_code == 200, loopback


def test_dashboard_sessions_are_server_side_and_the_api_ignores_them(tmp_path: Path, serve) -> None:
    """Promise: the dashboard's cookie holds a random session id, not the token; the API never
    accepts it; each session has its own CSRF value; logout and token revocation end it."""
    home = tmp_path / "home"
    tokens = _tokens(home, "deployer", "admin")
    served = serve("--without-scheduler", home=home)

    def login(client: httpx.Client) -> str:
        done = client.post("/ui/login", data={"token": tokens["deployer"], "next": "/ui"})
        assert done.status_code == 303, done.text
        cookie = client.cookies["wk_session"]
        assert tokens["deployer"] not in cookie
        assert len(cookie) >= 40
        found = CSRF.search(client.get("/ui").text)
        assert found is not None
        return found.group(1)

    with httpx.Client(base_url=served.url, follow_redirects=False) as one, \
            httpx.Client(base_url=served.url, follow_redirects=False) as two:  # fmt: skip
        csrf_one, csrf_two = login(one), login(two)
        assert csrf_one != csrf_two
        # the session cookie is no credential for the API, with or without JSON
        api = one.post("/api/v1/models/iris/rollback", json={})
        assert api.status_code == 401
        # a form carrying another session's CSRF value is refused
        crossed = one.post("/ui/actions/models/iris/rollback", data={"csrf": csrf_two})
        assert crossed.status_code == 403
        assert _production(home) == 1
        # logout ends the session on the server: the old cookie is worthless afterwards
        stolen = one.cookies["wk_session"]
        assert one.post("/ui/logout", data={"csrf": csrf_one}).status_code == 303
        replay = httpx.get(served.url + "/ui", cookies={"wk_session": stolen})
        assert replay.status_code == 303  # back to the login form
        # revoking the token ends its other sessions too
        code, out = _cli(home, "tokens", "revoke", "1")
        assert code == 0, out

        def ended() -> bool:
            return two.get("/ui").status_code == 303

        wait_for(ended, 30, "the revoked token's session to end")


def test_the_data_plane_needs_a_token_when_asked(tmp_path: Path, serve) -> None:
    """Promise: with --require-token predict,feedback, predictions need a client (or higher)
    token and feedback a feedback (or deployer/admin) token; nobody else can overwrite labels."""
    home = tmp_path / "home"
    tokens = _tokens(home, "client", "feedback", "reader")
    served = serve("--without-scheduler", "--require-token", "predict,feedback", home=home)
    predict = served.url + "/v1/models/iris:predict"

    def auth(role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {tokens[role]}"}

    assert httpx.post(predict, json=ROW).status_code == 401
    assert httpx.post(predict, json=ROW, headers={"authorization": "Bearer wk_forged"}
                      ).status_code == 401  # fmt: skip
    assert httpx.post(predict, json=ROW, headers=auth("feedback")).status_code == 403
    answer = httpx.post(predict, json=ROW, headers=auth("client"))
    assert answer.status_code == 200
    assert httpx.post(predict, json=ROW, headers=auth("reader")).status_code == 200
    v2 = httpx.post(served.url + "/v2/models/iris/infer", json={"inputs": []})
    assert v2.status_code == 401
    label = [{"request_id": answer.json()["request_id"], "label": 0}]
    feedback = served.url + "/v1/feedback"
    assert httpx.post(feedback, json=label).status_code == 401
    assert httpx.post(feedback, json=label, headers=auth("client")).status_code == 403
    assert httpx.post(feedback, json=label, headers=auth("reader")).status_code == 403
    accepted = httpx.post(feedback, json=label, headers=auth("feedback"))
    assert accepted.status_code == 200, accepted.text


def test_require_token_is_refused_without_tokens_or_with_an_unknown_route(tmp_path: Path) -> None:
    """Promise: an impossible --require-token is a one-line error before anything starts."""
    home = tmp_path / "home"
    iris_registry(home).close()
    code, out = _cli(home, "serve", "--require-token", "predict")
    assert code == 1
    assert "needs a live token" in out
    code, out = _cli(home, "serve", "--require-token", "predict,admin")
    assert code == 1
    assert "not 'admin'" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("name", ["ops\n", "x" * 300])
def test_token_names_are_one_printable_line(tmp_path: Path, name: str) -> None:
    """Promise: a token name (shown in the audit log) cannot smuggle a line break."""
    code, out = _cli(tmp_path, "tokens", "create", "--role", "reader", "--name", name)
    assert code == 1
    assert "printable" in out
