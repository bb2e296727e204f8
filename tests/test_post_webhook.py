"""A post's own webhook (``community_post.webhook_url``): set and cleared through the CLI
(``casegrid posts set-webhook``) and the API (``PUT /api/v1/posts/{code}/webhook``), shown
where posts are listed, refused unless https (or http to this machine), and used by the
worker for the post's events."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from casegrid.errors import InvalidInput
from casegrid.settings import Settings
from casegrid.worker import Worker
from cases.tokens import create_token
from notify.webhook import check_url
from tests.helpers.ledger import COMM_A, COMM_B, dispatched_case
from tests.helpers.notify_peers import Receiver


def webhook_of(engine, code: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT webhook_url FROM community_post WHERE community_code = :c"),
                            {"c": code}).scalar_one()


@pytest.mark.parametrize("url", ["https://hooks.example.org/p?k=1", "http://127.0.0.1:8080/x",
                                 "http://localhost/x", "http://[::1]:9000/", "http://127.9.9.9/"])
def test_accepted_urls(url):
    assert check_url(f"  {url} ") == url


@pytest.mark.parametrize("url, words", [
    ("http://hooks.example.org/x", "use https://hooks.example.org/x"),
    ("http://10.0.0.5/x", "only to this machine"),
    ("ftp://example.org/x", "https://"),
    ("hooks.example.org/x", "https://"),
    ("https:///nohost", "with a host"),
    ("https://example.org:port/x", "not a URL"),
])
def test_refused_urls_say_what_to_write(url, words):
    with pytest.raises(InvalidInput) as exc:
        check_url(url)
    assert exc.value.field == "url" and words in exc.value.message


@pytest.fixture
def cli(city_engine, monkeypatch):
    from casegrid.cli import app, boundaries

    monkeypatch.setattr(boundaries, "engine", lambda: city_engine)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_cli_sets_lists_and_clears(cli, city_engine):
    r = cli("posts", "set-webhook", COMM_A, "https://post-a.example.org/hook")
    assert r.exit_code == 0, r.output
    assert webhook_of(city_engine, COMM_A) == "https://post-a.example.org/hook"
    listed = cli("posts", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {p["community_code"]: p for p in json.loads(listed.output)}
    assert rows[COMM_A]["webhook_url"] == "https://post-a.example.org/hook"
    assert rows[COMM_B]["webhook_url"] is None and rows[COMM_A]["phone"]
    table = cli("posts", "list")
    assert table.exit_code == 0 and "webhook" in table.output and "(default)" in table.output
    r = cli("posts", "set-webhook", COMM_A, "--clear")
    assert r.exit_code == 0, r.output
    assert webhook_of(city_engine, COMM_A) is None


def test_cli_refuses_bad_input_and_changes_nothing(cli, city_engine):
    cli("posts", "set-webhook", COMM_A, "https://kept.example.org/")
    for args, words in [
        ((COMM_A, "http://hooks.example.org/x"), "plain http is allowed only to this machine"),
        ((COMM_A, "mailto:a@b"), "must be an https:// URL"),
        (("999999999999", "https://x.example.org/"), "no post for community '999999999999'"),
        ((COMM_A,), "give a URL, or --clear"),
        ((COMM_A, "https://x.example.org/", "--clear"), "give a URL, or --clear"),
    ]:
        r = cli("posts", "set-webhook", *args)
        out = " ".join((r.output + (r.stderr if r.stderr_bytes is not None else "")).split())
        assert r.exit_code == 2, (args, r.output)
        assert words in out and "Traceback" not in out, (args, out)
    assert webhook_of(city_engine, COMM_A) == "https://kept.example.org/"


@pytest.fixture
def api(city_db_url, city_engine):
    with city_engine.begin() as conn:
        tokens = {role: create_token(conn, role, f"t-{role}")[1] for role in ("admin", "dispatcher")}
    with TestClient(create_app(database_url=city_db_url)) as client:
        yield client, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


def test_api_sets_clears_and_refuses(api, city_engine):
    client, h = api
    url = f"/api/v1/posts/{COMM_A}/webhook"
    r = client.put(url, json={"url": "https://post-a.example.org/hook"}, headers=h["admin"])
    assert r.status_code == 200, r.text
    assert r.json()["webhook_url"] == "https://post-a.example.org/hook"
    posts = {p["community_code"]: p for p in client.get("/api/v1/posts", headers=h["admin"]).json()["posts"]}
    assert posts[COMM_A]["webhook_url"] == "https://post-a.example.org/hook"

    r = client.put(url, json={"url": "http://hooks.example.org/x"}, headers=h["admin"])
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input" and "https://hooks.example.org/x" in r.json()["detail"]
    r = client.put("/api/v1/posts/000000000000/webhook", json={"url": "https://x.example.org/"},
                   headers=h["admin"])
    assert r.status_code == 404 and "posts import" in r.json()["detail"]
    assert client.put(url, json={"url": None}, headers=h["dispatcher"]).status_code == 403
    assert webhook_of(city_engine, COMM_A) == "https://post-a.example.org/hook"

    assert client.put(url, json={"url": None}, headers=h["admin"]).json()["webhook_url"] is None
    assert webhook_of(city_engine, COMM_A) is None


def test_the_posts_events_go_to_its_own_webhook(city_engine):
    with Receiver() as post_rx, Receiver() as default_rx:
        with city_engine.begin() as conn:
            from notify.posts import set_webhook

            set_webhook(conn, COMM_A, post_rx.url + "/post")
        dispatched_case(city_engine)  # a COMM_A case: reviewed (dispatchers), dispatched (post)
        Worker(city_engine, Settings(webhook_url=default_rx.url + "/all", webhook_secret="s")).run_pass()
        assert [r.headers["X-Casegrid-Event"] for r in post_rx.requests] == ["case.dispatched"]
        assert [r.headers["X-Casegrid-Event"] for r in default_rx.requests] == ["case.reviewed"]


def test_the_settings_urls_follow_the_same_rule():
    from pydantic import ValidationError

    assert Settings(webhook_url="http://127.0.0.1:9/x").webhook_url == "http://127.0.0.1:9/x"
    with pytest.raises(ValidationError, match="use https://hooks.example.org/x"):
        Settings(webhook_url="http://hooks.example.org/x")
    with pytest.raises(ValidationError, match=r"webhook_role_urls\[supervisor\]"):
        Settings(webhook_role_urls={"supervisor": "ftp://x"})
