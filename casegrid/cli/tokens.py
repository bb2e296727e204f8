"""``casegrid token create|list|revoke``: API tokens."""

from __future__ import annotations

import typer
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@token_app.command("create")
@cli_errors
def create(
    role: str = typer.Option(..., help="admin|dispatcher|supervisor|community_officer|planner|intake"),
    community: list[str] = typer.Option(None, "--community", help="community code (repeatable)"),
    name: str = typer.Option("", help="who or what the token is for"),
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from cases.tokens import create_token

    with engine().begin() as conn:
        token_id, secret = create_token(conn, role, name or role, community or [])
    console.print(f"token {token_id} ({role}) — shown once, store it now:", highlight=False)
    typer.echo(secret)


@token_app.command("list")
@cli_errors
def list_cmd() -> None:
    """List tokens (never their secrets)."""
    from cases.tokens import list_tokens

    with engine().connect() as conn:
        rows = list_tokens(conn)
    table = Table("id", "name", "role", "communities", "created", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]), r["name"], r["role"], ",".join(r["communities"] or []),
            f"{r['created_at']:%Y-%m-%d %H:%M}", f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "",
        )
    console.print(table)


@token_app.command("revoke")
@cli_errors
def revoke(token_id: int = typer.Argument(..., help="token id from `casegrid token list`")) -> None:
    """Revoke a token; it stops working at once."""
    from cases.tokens import revoke_token

    with engine().begin() as conn:
        revoke_token(conn, token_id)
    console.print(f"revoked token {token_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
