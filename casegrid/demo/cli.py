"""The demo's commands: ``casegrid sample load`` (the sample city, a SYNTHETIC year of
complaints with their workflow history, and community activities), ``casegrid demo-accounts``
and ``casegrid demo-token``; ``make run`` calls them."""

from __future__ import annotations

import typer

from casegrid.cli._common import cli_errors, console, engine

sample_app = typer.Typer(help="The sample city (Tengzhou, synthetic geometry).", no_args_is_help=True)


@sample_app.command("load")
@cli_errors
def sample_load(
    if_empty: bool = typer.Option(False, "--if-empty", help="do nothing when boundaries exist"),
    complaints: bool = typer.Option(True, help="also load a synthetic year of complaints"),
    simulate: bool = typer.Option(
        True, help="give the sample complaints a synthetic workflow history (reviews, "
        "dispatches, handling, replies, closings); idempotent"),
) -> None:
    """Load the sample city: subdistricts, 55 communities, posts, points of interest."""
    from casegrid.demo.city import load_sample_city, sample_city_loaded

    with engine().begin() as conn:
        loaded = if_empty and sample_city_loaded(conn)
        if not loaded:
            with console.status("loading the sample city"):
                counts = load_sample_city(conn)
    if loaded:
        console.print("sample city already loaded")
    else:
        console.print(f"[green]sample city loaded[/] {counts}")
    # Each step checks its own state, so an interrupted first run completes on the next one.
    if complaints and not (if_empty and _sample_complaints_loaded()):
        _load_complaints()
    if complaints and simulate:
        # Also on a database loaded before the simulation existed; a no-op once done.
        _simulate_history()
    if complaints:
        _load_activities()


def _load_activities() -> None:
    """A SYNTHETIC year of community activities (casegrid/demo/activities.py), the same
    year as the synthetic complaints; a no-op once loaded."""
    from casegrid.demo.activities import load_sample_activities
    from casegrid.demo.complaints import recent_period_start

    with console.status("SYNTHETIC activities"), engine().begin() as conn:
        n = load_sample_activities(conn, recent_period_start().date())
    if n:
        console.print(f"[green]synthetic activities loaded[/] {n:,} (a year, marked synthetic)")


def _sample_complaints_loaded() -> bool:
    from sqlalchemy import text

    from casegrid.demo.history import SAMPLE_ACTOR

    with engine().connect() as conn:
        return bool(conn.execute(
            text("SELECT 1 FROM case_event WHERE action = 'register' AND actor = :a LIMIT 1"),
            {"a": SAMPLE_ACTOR}).first())


def _load_complaints() -> None:
    """A synthetic year of complaints ending yesterday, through the bulk import."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from casegrid.demo.complaints import load_sample_complaints

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("SYNTHETIC complaints: generating a year")

        def hook(stage: str, done: float, total: float | None) -> None:
            bar.update(task, description=f"SYNTHETIC complaints: {stage} {int(done or 0):,}")

        report = load_sample_complaints(engine(), progress=hook, start=None)
    console.print(f"[green]synthetic complaints loaded[/] {report.inserted:,} new "
                  f"({report.already_present:,} already present)", highlight=False)


def _simulate_history() -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from casegrid.demo.history import SAMPLE_ACTOR, SYNTHETIC_NOTE, simulate_ledger

    labels = {"plan": "SYNTHETIC history: planning cases", "apply": "SYNTHETIC history: actions",
              "write": "SYNTHETIC history: writing ledger"}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def hook(stage: str, done: float, total: float | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        with engine().begin() as conn:
            report = simulate_ledger(conn, register_actor=SAMPLE_ACTOR, progress=hook)
        for task in tasks.values():  # the write stage has no count: show it done
            done = bar.tasks[task].completed or 1
            bar.update(task, total=done, completed=done)
    if report.simulated:
        console.print(f"[green]synthetic workflow history[/] for {report.simulated} sample cases "
                      f"({report.actions} actions, up to {report.until:%Y-%m-%d %H:%M}): "
                      f"{report.statuses}\n  {SYNTHETIC_NOTE}", highlight=False)


@cli_errors
def demo_token() -> None:
    """Create a dispatcher API token for the demo and print it with an example call."""
    from casegrid.settings import get_settings
    from cases.tokens import create_token

    with engine().begin() as conn:
        _, secret = create_token(conn, "dispatcher", "demo dispatcher (make run)")
    s = get_settings()
    base = f"http://{s.host}:{s.port}"
    console.print(
        f"  API token (dispatcher): [bold yellow]{secret}[/]\n"
        f"  API docs:         {base}/docs\n"
        f"  try:  curl -H 'Authorization: Bearer {secret}' '{base}/api/v1/route?lon=117.16&lat=35.09'\n",
        highlight=False,
        soft_wrap=True,
    )


# One demo person per role; the officer works the first sample community.
DEMO_PEOPLE = (
    ("dispatcher", "dispatcher", "调度员 王芳"),
    ("supervisor", "supervisor", "监督员 李华"),
    ("officer", "community_officer", "社区岗 赵强"),
    ("planner", "planner", "规划分析 孙丽"),
    ("admin", "admin", "管理员"),
)


@cli_errors
def demo_accounts() -> None:
    """Create (or give new passwords to) one demo account per role and print how to sign in.
    The passwords are new random ones each time: this is for a demo, not for a city."""
    import secrets

    from sqlalchemy import text

    from casegrid.settings import get_settings
    from cases.users import create_user, reset_password

    rows = []
    with engine().begin() as conn:
        community = conn.execute(text(
            "SELECT c.code, c.name FROM community c JOIN boundary_generation g "
            "ON g.id = c.generation_id AND g.active ORDER BY c.code LIMIT 1")).first()
        for username, role, display in DEMO_PEOPLE:
            password = secrets.token_urlsafe(9)
            comms = [community.code] if role == "community_officer" and community else None
            if role == "community_officer" and not comms:
                continue  # no boundaries loaded: no community to bind an officer to
            exists = conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"),
                                  {"u": username}).first()
            if exists:
                reset_password(conn, username, password)
            else:
                create_user(conn, username, role, password, communities=comms, display_name=display)
            where = f" ({community.name} {community.code})" if comms else ""
            rows.append((username, password, f"{display}{where}"))
    s = get_settings()
    base = f"http://{s.host}:{s.port}"
    lines = "\n".join(f"    {u:<11} {p:<14} {d}" for u, p, d in rows)
    console.print(
        "\n[bold]casegrid demo[/]: sign in at "
        f"[bold]{base}/login[/] (workbench {base}/work, maps {base}/maps/dispatch)\n"
        f"    username    password       who\n{lines}\n",
        highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the demo's commands to the ``casegrid`` CLI (called by casegrid/cli/demo.py)."""
    app.add_typer(sample_app, name="sample")
    app.command("demo-token")(demo_token)
    app.command("demo-accounts")(demo_accounts)
