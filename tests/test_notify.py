"""Notifications end to end: the outbox written with the ledger, delivered by the worker to
real peers on loopback (an HTTP receiver, a fake SMS gateway, aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from casegrid.settings import Settings
from casegrid.worker import Worker
from cases.workflow import apply_action
from notify import outbox
from tests.helpers.ledger import DISP, OFF_A, SUP, dispatched_case, make_case, sh
from tests.helpers.notify_peers import Receiver, SmtpSink

SECRET = "s3cret-for-tests"


def settings(**kw) -> Settings:
    base = {"webhook_secret": SECRET, "notify_retry_base_s": 0.05, "worker_poll_s": 0.05}
    return Settings(**(base | kw))


def test_dispatch_is_delivered_signed(city_engine):
    cid = dispatched_case(city_engine)
    with Receiver() as rx:
        done = Worker(city_engine, settings(webhook_url=rx.url + "/hook")).run_pass()
        assert done["delivered"] == 2
        by_type = {r.headers["X-Casegrid-Event"]: r for r in rx.requests}
    assert set(by_type) == {"case.reviewed", "case.dispatched"}
    hit = by_type["case.dispatched"]
    expected = "sha256=" + hmac.new(SECRET.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hit.headers["X-Casegrid-Signature"], expected)
    body = json.loads(hit.body)
    assert hit.headers["X-Casegrid-Delivery"] == str(body["id"])
    assert body["type"] == "case.dispatched" and body["case"]["id"] == cid
    assert body["case"]["status"] == "dispatched" and body["recipients"] == ["post"]
    assert body["case"]["acknowledge_due_at"] is not None
    assert "reporter_phone" not in json.dumps(body)
    # a tampered body would not verify
    assert not hmac.compare_digest(
        expected, "sha256=" + hmac.new(SECRET.encode(), hit.body + b" ", hashlib.sha256).hexdigest())


def test_retried_until_the_receiver_recovers(city_engine):
    dispatched_case(city_engine)
    with city_engine.begin() as conn:  # only the dispatch: one event
        conn.execute(text("UPDATE outbox_event SET routed_at = now() WHERE type <> 'case.dispatched'"))
    with Receiver(statuses=[500, 500, 500]) as rx:
        w = Worker(city_engine, settings(webhook_url=rx.url))
        assert w.run_pass()["retrying"] == 1
        deadline = time.monotonic() + 20  # backoff 0.05, 0.1, 0.2 s
        while not w.run_pass()["delivered"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [json.loads(r.body)["type"] for r in rx.requests] == ["case.dispatched"] * 4
    with city_engine.connect() as conn:
        d = conn.execute(text("SELECT status, attempts FROM outbox_delivery")).one()
        tries = conn.execute(text("SELECT ok, status_code FROM outbox_attempt ORDER BY id")).all()
    assert (d.status, d.attempts) == ("delivered", 4)
    assert [(t.ok, t.status_code) for t in tries] == [(False, 500)] * 3 + [(True, 200)]


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("casegrid")), *args],
                          env={**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120)


def test_given_up_after_the_limit_then_retried_by_hand(city_engine, city_db_url):
    dispatched_case(city_engine)
    with Receiver(statuses=[503] * 1000) as rx:
        w = Worker(city_engine, settings(webhook_url=rx.url, notify_give_up_s=0.3))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            w.run_pass()
            time.sleep(0.02)
            with city_engine.connect() as conn:
                if outbox.failed_count(conn) == 2:
                    break
        with city_engine.connect() as conn:
            failed = outbox.list_deliveries(conn, failed_only=True)
        assert len(failed) == 2 and all("503" in f["last_error"] for f in failed)
        rx.statuses.clear()
        listed = _cli(city_db_url, "outbox", "list", "--failed")
        assert listed.returncode == 0, listed.stderr
        assert all(str(f["id"]) in listed.stdout for f in failed) and "failed" in listed.stdout
        retried = _cli(city_db_url, "outbox", "retry", str(failed[0]["id"]))
        assert retried.returncode == 0, retried.stderr
        missing = _cli(city_db_url, "outbox", "retry", "999999")
        assert missing.returncode == 2 and "no delivery 999999" in missing.stderr
        assert w.run_pass()["delivered"] == 1
    with city_engine.connect() as conn:
        assert outbox.failed_count(conn) == 1


def test_rolled_back_event_is_never_sent(city_engine):
    with city_engine.begin() as conn:
        cid = make_case(conn)
        apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 14, 10))
    with city_engine.connect() as conn, conn.begin() as tx:
        apply_action(conn, cid, "dispatch", {}, DISP, at=sh(2026, 9, 14, 11))
        assert conn.execute(text("SELECT count(*) FROM outbox_event WHERE type = 'case.dispatched'")
                            ).scalar_one() == 1
        tx.rollback()
    with Receiver() as rx:
        Worker(city_engine, settings(webhook_url=rx.url)).run_pass()
        assert [r.headers["X-Casegrid-Event"] for r in rx.requests] == ["case.reviewed"]


def test_sms_waits_out_quiet_hours_and_email_reaches_supervisors(city_engine):
    at = sh(2026, 9, 15, 22, 50)
    with city_engine.begin() as conn:
        cid = make_case(conn, received_at=sh(2026, 9, 15, 9))
        apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 15, 10))
        apply_action(conn, cid, "dispatch", {}, DISP, at=at)
        apply_action(conn, cid, "handle", {"note": "清理完毕"}, OFF_A, at=at + timedelta(minutes=5))
        case_no = conn.execute(text('SELECT case_no FROM "case" WHERE id = :i'), {"i": cid}).scalar()
    with Receiver() as gw, SmtpSink() as smtp:
        s = settings(sms_gateway_url=gw.url + "/send?to={phone}", smtp_host="127.0.0.1",
                     smtp_port=smtp.port, email_role_addresses={"supervisor": ["duban@tz.gov.cn"]})
        w = Worker(city_engine, s)
        w.run_pass(now=sh(2026, 9, 15, 23, 0))
        assert gw.requests == []                      # 23:00: quiet
        assert len(smtp.messages) == 1                # email has no quiet hours
        w.run_pass(now=sh(2026, 9, 16, 6, 59))
        assert gw.requests == []
        w.run_pass(now=sh(2026, 9, 16, 7, 0))
        assert len(gw.requests) == 1
    sms = json.loads(gw.requests[0].body)
    assert gw.requests[0].path == "/send?to=0632-5503227"
    assert sms["phone"] == "0632-5503227"
    assert case_no in sms["text"] and "暴露垃圾" in sms["text"] and "新派遣" in sms["text"]
    mail = smtp.messages[0]
    assert mail.rcpt_tos == ["duban@tz.gov.cn"]
    assert case_no.encode() in mail.content


def test_urgent_category_sms_goes_at_night(city_engine):
    with city_engine.begin() as conn:
        cid = make_case(conn, category="0406", received_at=sh(2026, 9, 15, 9))
        apply_action(conn, cid, "accept", {}, SUP, at=sh(2026, 9, 15, 10))
        apply_action(conn, cid, "dispatch", {}, DISP, at=sh(2026, 9, 15, 23, 0))
    with Receiver() as gw:
        s = settings(sms_gateway_url=gw.url, sms_urgent_categories=["0406"])
        Worker(city_engine, s).run_pass(now=sh(2026, 9, 15, 23, 1))
        assert len(gw.requests) == 1


@pytest.mark.parametrize("spec,at,expect", [
    ("22:00-07:00", (23, 0), (1, 7, 0)), ("22:00-07:00", (6, 59), (0, 7, 0)),
    ("22:00-07:00", (7, 0), (0, 7, 0)), ("22:00-07:00", (21, 59), (0, 21, 59)),
    ("12:00-13:00", (12, 30), (0, 13, 0)), ("", (23, 0), (0, 23, 0)),
])
def test_quiet_hours(spec, at, expect):
    from notify.sms import allowed_at

    start = sh(2026, 9, 15, *at)
    got = allowed_at(start, spec)
    assert got == sh(2026, 9, 15 + expect[0], expect[1], expect[2])


def test_an_idle_worker_wakes_when_an_event_commits(city_engine):
    with Receiver() as rx:
        w = Worker(city_engine, settings(webhook_url=rx.url, worker_poll_s=60))
        stop = threading.Event()
        runner = threading.Thread(target=w.run, args=(stop,))
        runner.start()
        try:
            time.sleep(2)  # its first pass found nothing: it waits (a minute, unless woken)
            t0 = time.monotonic()
            dispatched_case(city_engine)
            assert rx.wait_for(lambda got: len(got) == 2, timeout=20)
            assert time.monotonic() - t0 < 20
        finally:
            stop.set()
            with city_engine.begin() as conn:  # wake it to see the stop
                conn.execute(text("SELECT pg_notify('casegrid_outbox', '')"))
            runner.join(timeout=30)
        assert not runner.is_alive()


def test_purge_keeps_what_is_not_delivered(city_engine):
    dispatched_case(city_engine)
    with Receiver(statuses=[500]) as rx:  # the first delivery fails and stays pending
        Worker(city_engine, settings(webhook_url=rx.url, notify_retry_base_s=3600)).run_pass()
    with city_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_event SET at = at - interval '100 days'"))
        assert outbox.purge(conn, 90) == 1
        left = conn.execute(text(
            "SELECT d.status, (SELECT count(*) FROM outbox_attempt a WHERE a.delivery_id = d.id) "
            "FROM outbox_delivery d")).all()
        assert [tuple(r) for r in left] == [("pending", 1)]
        assert conn.execute(text("SELECT count(*) FROM outbox_event")).scalar_one() == 1


def test_intake_writes_case_registered_in_its_own_statement(city_engine):
    from cases.intake import NewCase, register_cases
    from cases.tokens import Principal

    subs = [(NewCase(lon=117.1588, lat=35.0827, category="0504", channel="platform",
                     external_id=f"ob-{i}", description="店外经营", address="荆河路13号"),
             Principal(0, "intake", "intake")) for i in range(3)]
    with city_engine.begin() as conn:
        results = register_cases(conn, subs, search_duplicates=False)
        again = register_cases(conn, subs[:1], search_duplicates=False)  # a resend: no event
    assert again[0].created is False
    with Receiver() as rx:
        Worker(city_engine, settings(webhook_url=rx.url,
                                     webhook_role_urls={"supervisor": rx.url + "/sup"})).run_pass()
        got = sorted((json.loads(r.body)["case"]["case_no"], r.path) for r in rx.requests)
    assert got == sorted((r.case["case_no"], "/sup") for r in results)
