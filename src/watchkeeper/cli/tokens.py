"""``watchkeeper tokens``: API and dashboard tokens with a role."""

from __future__ import annotations

from typing import Annotated

import typer

from watchkeeper.cli._common import new_app, open_registry, print_json, table
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
def revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token (servers stop accepting it within seconds)."""
    with open_registry(ctx) as registry:
        info = TokenStore(registry.engine).revoke(token_id)
    typer.echo(f"revoked token {info.id} ({info.name})")
