"""``casegrid replies list|set|delete``: the response templates (常用回复) an admin keeps per
category (``cases.replies``; the same rules as ``/api/v1/response-templates``)."""

from __future__ import annotations

import typer
from rich.table import Table

from casegrid.cli._common import cli_errors, console, engine

replies_app = typer.Typer(help="Response templates (常用回复) per category.",
                          no_args_is_help=True)


@replies_app.command("list")
@cli_errors
def list_cmd(category: str = typer.Option(None, "--category", help="one category code")) -> None:
    """List the templates (of one category and those for every category)."""
    from cases.replies import FIELDS, list_templates

    with engine().connect() as conn:
        rows = list_templates(conn, category)
    table = Table("id", "category", "title", "body")
    for t in rows:
        table.add_row(str(t["id"]), t["category_code"], t["title"], t["body"])
    console.print(table)
    console.print("fields: " + ", ".join(f"{{{k}}} {v}" for k, v in FIELDS.items()))


@replies_app.command("set")
@cli_errors
def set_cmd(
    category: str = typer.Option(..., "--category", help="category code, or * for every one"),
    title: str = typer.Option(..., "--title"),
    body: str = typer.Option(..., "--body", help="the reply; {field} names a fact of the case"),
    actor: str = typer.Option("operator", "--actor", help="your name"),
) -> None:
    """Add a template, or replace the body of the category's template of that title."""
    from cases.replies import save_template

    with engine().begin() as conn:
        t = save_template(conn, category, title, body, f"cli:{actor}")
    console.print(f"template {t['id']} ({t['category_code']}, {t['title']}) saved")


@replies_app.command("delete")
@cli_errors
def delete_cmd(template_id: int = typer.Argument(...)) -> None:
    """Remove a template."""
    from cases.replies import delete_template

    with engine().begin() as conn:
        delete_template(conn, template_id)
    console.print(f"template {template_id} deleted")


def register(app: typer.Typer) -> None:
    app.add_typer(replies_app, name="replies")
