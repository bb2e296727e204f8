"""``casegrid case show|act|history|limits|limits-set`` and ``casegrid report``: the case
ledger for operators. Every change goes through ``cases.workflow.apply_action``, the same
rules as the API.

Who is acting: ``--as-token SECRET`` acts as that API token (its role and communities);
otherwise the operator acts as ``--role`` (default admin) under the name ``cli:--actor``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine, option_day
from casegrid.errors import InvalidInput

case_app = typer.Typer(help="Work the case ledger: show, act, history, time limits.",
                       no_args_is_help=True)

AS_TOKEN = typer.Option(None, "--as-token", help="act as this API token (secret)")
ROLE = typer.Option("admin", "--role", help="role when no token is given")
ACTOR = typer.Option("operator", "--actor", help="your name in the history (no token)")


def _principal(conn, token: str | None, role: str, actor: str):
    from cases.tokens import ROLES, Principal, authenticate

    if token:
        return authenticate(conn, token)
    if role not in ROLES or role == "community_officer":
        raise InvalidInput("--role must be admin, dispatcher, supervisor, planner or intake "
                           "(a community officer acts with --as-token)", field="role")
    return Principal(0, f"cli:{actor}", role)


def _dump(obj) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


@case_app.command("show")
@cli_errors
def show(case_id: int = typer.Argument(...), as_token: str = AS_TOKEN, role: str = ROLE,
         actor: str = ACTOR) -> None:
    """Show a case with its due times, due status and the actions open to you."""
    from cases.workflow import view

    with engine().connect() as conn:
        _dump(view(conn, case_id, _principal(conn, as_token, role, actor)))


@case_app.command("act")
@cli_errors
def act(
    case_id: int = typer.Argument(...),
    action: str = typer.Argument(..., help="accept|reject|reroute|dispatch|redispatch|return|"
                                 "handle|request_extension|approve_extension|deny_extension|"
                                 "verify_pass|verify_fail|reply|close"),
    note: str = typer.Option(None, "--note"),
    reason: str = typer.Option(None, "--reason"),
    community: str = typer.Option(None, "--community", help="target community code"),
    data: str = typer.Option(None, "--data", help='more payload as JSON, e.g. \'{"amount": 2}\''),
    version: int = typer.Option(None, "--version", help="the version you read (409 if changed)"),
    as_token: str = AS_TOKEN, role: str = ROLE, actor: str = ACTOR,
) -> None:
    """Take one action on a case (same rules as POST /api/v1/cases/{id}/actions)."""
    from cases.workflow import apply_action

    payload = {}
    if data:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--data is not valid JSON: {exc.msg}", field="data") from None
        if not isinstance(payload, dict):
            raise InvalidInput("--data must be a JSON object", field="data")
    for key, value in (("note", note), ("reason", reason), ("community_code", community)):
        if value is not None:
            payload[key] = value
    with engine().begin() as conn:
        case = apply_action(conn, case_id, action, payload,
                            _principal(conn, as_token, role, actor), version)
    console.print(f"case {case_id}: {action} -> [bold]{case['status']}[/] (version "
                  f"{case['version']}); next: {', '.join(case['actions']) or '-'}")


@case_app.command("history")
@cli_errors
def history_cmd(case_id: int = typer.Argument(...), as_token: str = AS_TOKEN,
                role: str = ROLE, actor: str = ACTOR,
                as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """The case's history: who did what, when, from which state to which."""
    from cases.workflow import history

    with engine().connect() as conn:
        events = history(conn, case_id, _principal(conn, as_token, role, actor))
    if as_json:
        _dump(events)
        return
    table = Table("at", "actor", "role", "action", "from", "to", "note")
    for e in events:
        table.add_row(f"{e['at']:%Y-%m-%d %H:%M}", e["actor"], e["role"], e["action"],
                      e["from_state"] or "", e["to_state"] or "", e["note"] or "")
    console.print(table)


@case_app.command("limits")
@cli_errors
def limits(code: str = typer.Argument(..., help="category code, or * for the defaults")) -> None:
    """Show a category's time limits per step (own rows and effective values)."""
    from cases.deadlines import get_time_limits

    with engine().connect() as conn:
        _dump(get_time_limits(conn, code))


@case_app.command("limits-set")
@cli_errors
def limits_set(
    code: str = typer.Argument(..., help="category code, or * for the defaults"),
    step: str = typer.Option(..., help="review|dispatch|handle|reply"),
    amount: float = typer.Option(...),
    unit: str = typer.Option(..., help="working_hours|working_days|calendar_hours|calendar_days"),
    channel: str = typer.Option("*", help="only for this channel (default: any)"),
    note: str = typer.Option(None),
    actor: str = ACTOR,
) -> None:
    """Set one time limit (applies to deadlines set from now on)."""
    from cases.deadlines import set_time_limits

    value: float | int = int(amount) if amount.is_integer() else amount
    with engine().begin() as conn:
        set_time_limits(conn, code, [{"step": step, "amount": value, "unit": unit,
                                      "channel": channel, "note": note}], f"cli:{actor}")
    console.print(f"{code} {step} ({channel}): {value} {unit}")



@cli_errors
def report(
    date_from: str = typer.Option(..., "--from", help="first day of receipt, YYYY-MM-DD"),
    date_to: str = typer.Option(..., "--to", help="last day of receipt, YYYY-MM-DD"),
    out: Path = typer.Option(Path("report.xlsx"), "--out", help="the .xlsx to write"),
) -> None:
    """Write the indicators as an Excel workbook (one sheet per grouping) and CSV files."""
    from cases.report import write_report

    with engine().connect() as conn:
        paths = write_report(conn, option_day(date_from, "from"), option_day(date_to, "to"), out)
    for p in paths:
        console.print(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.add_typer(case_app, name="case")
    app.command("report")(report)
