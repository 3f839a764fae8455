"""``watchkeeper tokens``: API and dashboard tokens with a role."""

from __future__ import annotations

from typing import Annotated

import typer

from watchkeeper.cli._common import new_app, open_registry, print_json, table
from watchkeeper.registry.sessions import SessionStore
from watchkeeper.registry.tokens import TokenStore

app = new_app("API and dashboard tokens: once one exists, the API and dashboard require one.")


@app.command()
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="reader, deployer or admin.")],
    name: Annotated[str, typer.Option(help="Who or what holds it (shown in the audit log).")]
    = "token",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:  # fmt: skip
    """Create a token; its secret is printed once and stored only as a hash."""
    with open_registry(ctx) as registry:
        info, secret = TokenStore(registry.engine).create(name, role, actor=registry.actor)
    if as_json:
        print_json({"id": info.id, "name": info.name, "role": info.role, "token": secret})
        return
    typer.echo(secret)
    typer.echo(f"token {info.id} ({info.name}, {info.role}): keep it now, it is not shown "
               "again", err=True)  # fmt: skip


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tokens (never their secrets)."""
    with open_registry(ctx) as registry:
        found = TokenStore(registry.engine).list()
    rows = [(t.id, t.name, t.role, t.created_by, f"{t.created_at:%F %T}",
             "revoked" if t.revoked else "live") for t in found]  # fmt: skip
    if as_json:
        print_json([dict(zip(("id", "name", "role", "created_by", "created_at", "state"), r,
                             strict=True)) for r in rows])  # fmt: skip
        return
    table("tokens", ["id", "name", "role", "created by", "created", "state"], rows)


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    force: Annotated[
        bool, typer.Option("--force", help="Revoke even the last live token (locks everyone out).")
    ] = False,
) -> None:
    """Revoke a token (servers stop accepting it, and its dashboard sessions, within seconds).

    Authentication stays on afterwards: revoking the last token locks the API and dashboard
    until a new token is created here; it never opens them."""
    with open_registry(ctx) as registry:
        store = TokenStore(registry.engine)
        info = store.revoke(token_id, force=force)
        left = store.live()
    typer.echo(f"revoked token {info.id} ({info.name})")
    if not left:
        typer.echo("warning: no live token is left: the API and dashboard refuse everyone until "
                   "`watchkeeper tokens create` makes a new one", err=True)  # fmt: skip


@app.command("end-sessions")
def end_sessions(
    ctx: typer.Context,
    token_id: Annotated[
        int | None, typer.Option("--token", help="Only the sessions opened with this token.")
    ] = None,
) -> None:
    """Log every dashboard session out (of one token, with --token), on every replica."""
    with open_registry(ctx) as registry:
        ended = SessionStore(registry.engine).end_all(token_id)
    typer.echo(f"ended {ended} dashboard session(s)")
