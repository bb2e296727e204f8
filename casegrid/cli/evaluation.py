"""``casegrid evaluation weights show|set`` and ``casegrid evaluation show``: the 考核 of
posts and subdistricts (cases/evaluation.py)."""

from __future__ import annotations

import typer

from casegrid.cli._common import cli_errors, console, engine, option_day

evaluation_app = typer.Typer(help="Evaluation (考核) of posts and subdistricts.",
                             no_args_is_help=True)
weights_app = typer.Typer(help="The composite's weights, directions, scale and minimum.",
                          no_args_is_help=True)
evaluation_app.add_typer(weights_app, name="weights")


def _print_weights(weights) -> None:  # noqa: ANN001 - cases.evaluation.Weights
    from cases.evaluation import LABELS_ZH

    console.print(f"scale {weights.scale:g}, posts with fewer than {weights.min_cases} cases "
                  "are listed apart")
    for name, (weight, direction) in weights.indicators.items():
        console.print(f"  {name:<20} {LABELS_ZH[name]:<8} weight {weight:>6g}  "
                      f"{'higher is better' if direction == 'higher' else 'lower is better'}")


@weights_app.command("show")
@cli_errors
def weights_show() -> None:
    """Print the indicators with their weights and directions."""
    from cases.evaluation import load_weights

    with engine().connect() as conn:
        _print_weights(load_weights(conn))


@weights_app.command("set")
@cli_errors
def weights_set(
    indicator: str = typer.Argument(None, help="on_time_ack_rate, on_time_close_rate, "
                                    "rework_rate, reply_rate, satisfaction_rate, cases_per_1000"),
    weight: float = typer.Option(None, "--weight", help="0 to 1000 (0 leaves it out)"),
    direction: str = typer.Option(None, "--direction", help="higher or lower is better"),
    scale: float = typer.Option(None, "--scale", help="the score's scale (default 100)"),
    min_cases: int = typer.Option(None, "--min-cases",
                                  help="posts with fewer cases in the period are listed apart"),
    by: str = typer.Option("operator", "--by", help="your name, kept with the change"),
) -> None:
    """Change one indicator's weight or direction, or the scale or the minimum."""
    from casegrid.errors import InvalidInput
    from cases.evaluation import set_weights

    if indicator is None and scale is None and min_cases is None:
        raise InvalidInput("name an indicator with --weight/--direction, or give --scale or "
                           "--min-cases", field="indicator")
    if indicator is not None and weight is None and direction is None:
        raise InvalidInput(f"say what to change of {indicator}: --weight W and/or "
                           "--direction higher|lower", field="weight")
    changes = {indicator: {"weight": weight, "direction": direction}} if indicator else {}
    with engine().begin() as conn:
        weights = set_weights(conn, changes, by, scale=scale, min_cases=min_cases)
    console.print("[green]saved[/]")
    _print_weights(weights)


@evaluation_app.command("show")
@cli_errors
def evaluation_show(
    date_from: str = typer.Option(..., "--from", help="first day of receipt, YYYY-MM-DD"),
    date_to: str = typer.Option(..., "--to", help="last day of receipt, YYYY-MM-DD"),
    level: str = typer.Option("post", "--level", help="post or subdistrict"),
) -> None:
    """Print the ranking with each unit's score and case count."""
    from cases.evaluation import evaluate

    with engine().connect() as conn:
        result = evaluate(conn, level, option_day(date_from, "from"), option_day(date_to, "to"))
    for e in result["ranked"]:
        score = "—" if e["score"] is None else f"{e['score']:.1f}"
        console.print(f"{e['rank']:>3}. {e['key']} {e['name'] or ''} {score:>6}  "
                      f"({e['cases']} cases)", highlight=False)
    if result["too_few"]:
        console.print(f"below {result['weights']['min_cases']} cases, not ranked: "
                      + ", ".join(f"{e['key']} ({e['cases']})" for e in result["too_few"]),
                      highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(evaluation_app, name="evaluation")
