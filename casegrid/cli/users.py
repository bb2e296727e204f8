"""``casegrid user create|list|disable|reset-password``: staff accounts for the workbench."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine

user_app = typer.Typer(help="Staff accounts (people sign in to /work; machines use tokens).",
                       no_args_is_help=True)


def _password(from_stdin: bool) -> str:
    """The password from standard input (first line) or a hidden prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@user_app.command("create")
@cli_errors
def create(
    username: str = typer.Argument(..., help="sign-in name: a-z, 0-9, '.', '_', '-'"),
    role: str = typer.Option(..., help="admin|dispatcher|supervisor|community_officer|planner"),
    community: list[str] = typer.Option(None, "--community", help="community code (repeatable; "
                                        "a community_officer needs at least one)"),
    display_name: str = typer.Option("", "--display-name", help="the name the history shows"),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="read the password from standard input"),
) -> None:
    """Create an account (the password is hashed with argon2id, never stored or shown)."""
    from cases.users import create_user

    password = _password(password_stdin)
    with engine().begin() as conn:
        uid = create_user(conn, username, role, password, communities=community or [],
                          display_name=display_name)
    console.print(f"account {uid} {username} ({role}) created", highlight=False)


@user_app.command("list")
@cli_errors
def list_cmd() -> None:
    """List accounts (never their passwords)."""
    from cases.users import list_users

    with engine().connect() as conn:
        rows = list_users(conn)
    table = Table("id", "username", "name", "role", "communities", "created", "disabled")
    for r in rows:
        table.add_row(str(r["id"]), r["username"], r["display_name"], r["role"],
                      ",".join(r["communities"] or []), f"{r['created_at']:%Y-%m-%d %H:%M}",
                      f"{r['disabled_at']:%Y-%m-%d %H:%M}" if r["disabled_at"] else "")
    console.print(table)


@user_app.command("disable")
@cli_errors
def disable(username: str = typer.Argument(...)) -> None:
    """Disable an account: its sessions end at once and it can no longer sign in."""
    from cases.users import disable_user

    with engine().begin() as conn:
        disable_user(conn, username)
    console.print(f"disabled {username}; its sessions ended", highlight=False)


@user_app.command("reset-password")
@cli_errors
def reset(
    username: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="read the password from standard input"),
) -> None:
    """Set a new password; the account's sessions end."""
    from cases.users import reset_password

    password = _password(password_stdin)
    with engine().begin() as conn:
        reset_password(conn, username, password)
    console.print(f"new password set for {username}; its sessions ended", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
