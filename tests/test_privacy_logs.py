"""No personal data from a database error reaches a log line, an HTTP body or the terminal.

PostgreSQL's error for a check violation carries the whole failing row ("Failing row
contains (...)": reporter name, phone, the description as written). These tests provoke
real violations on the throwaway PostGIS and read what the JSON log, the text log, the
client, the CLI and the server's own log got (casegrid.db_errors, casegrid.logs)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError

from casegrid.db_errors import describe, redacted_traceback
from casegrid.logs import get_logger, log_config
from tests.helpers.intake_api import interior_points

NAME = "王秀英"


def _phone() -> str:
    """A phone number of this test alone (the server log is shared by the whole session)."""
    return "139" + str(uuid.uuid4().int)[:8]


# A constraint the ledger does not have, added by the test so that intake (which checks
# every input it knows of) runs into the database's own refusal, as it would into a
# constraint a later migration adds or a bug lets through.
REFUSE_PHONE = ('ALTER TABLE "case" ADD CONSTRAINT case_refuses_test_phone '
                "CHECK (reporter_phone IS DISTINCT FROM CAST('{phone}' AS text)) NOT VALID")


@pytest.fixture
def app_log():
    """Logging configured as `casegrid serve` configures it (casegrid.logs.log_config,
    JSON), writing into a buffer; the previous set-up restored afterwards."""
    names = ("", "casegrid", "uvicorn", "uvicorn.access")
    saved = {n: (lg.handlers[:], lg.level, lg.propagate, lg.filters[:])
             for n in names for lg in [logging.getLogger(n)]}
    buf = io.StringIO()
    config = log_config("json")
    config["handlers"]["default"]["stream"] = buf
    logging.config.dictConfig(config)
    try:
        yield buf
    finally:
        for n, (handlers, level, propagate, filters) in saved.items():
            lg = logging.getLogger(n)
            lg.handlers[:], lg.filters[:] = handlers, filters
            lg.setLevel(level)
            lg.propagate = propagate


def _violation(engine, phone: str) -> IntegrityError:
    """A real check violation whose failing row holds a reporter's name, phone and text."""
    with engine.begin() as conn:
        conn.execute(text(REFUSE_PHONE.format(phone=phone)))
    with pytest.raises(IntegrityError) as err, engine.begin() as conn:
        conn.execute(text(
            'INSERT INTO "case" (channel, category_code, description, reported_at, '
            "reporter_name, reporter_phone) VALUES ('hotline_12345', '0599', :d, now(), :n, :p)"),
            {"d": f"楼上噪音 请回电{phone}", "n": NAME, "p": phone})
    return err.value


def test_the_driver_spells_the_failing_row_and_describe_does_not(engine):
    phone = _phone()
    exc = _violation(engine, phone)
    # The premise: psycopg's own text carries the row (so any log of str(exc) leaks it).
    assert "Failing row contains" in str(exc.orig) and phone in str(exc.orig)
    said = describe(exc)
    assert "case_refuses_test_phone" in said and "23514" in said and 'relation "case"' in said
    assert phone not in said and NAME not in said and "Failing row" not in said
    tb = redacted_traceback(exc)
    assert "test_privacy_logs.py" in tb and "CheckViolation" in tb
    assert phone not in tb and NAME not in tb and "Failing row" not in tb


def test_describe_elides_values_quoted_in_other_errors(engine):
    phone = _phone()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE contact (phone text PRIMARY KEY, n integer NOT NULL)"))
        conn.execute(text("INSERT INTO contact VALUES (:p, 1)"), {"p": phone})
    # Unique violation: DETAIL "Key (phone)=(...) already exists".
    with pytest.raises(IntegrityError) as dup, engine.begin() as conn:
        conn.execute(text("INSERT INTO contact VALUES (:p, 2)"), {"p": phone})
    assert phone in str(dup.value.orig)
    assert phone not in describe(dup.value) and "contact_pkey" in describe(dup.value)
    # A value PostgreSQL cannot read: the primary message quotes it.
    with pytest.raises(DataError) as bad, engine.begin() as conn:
        conn.execute(text("SELECT CAST(:p AS integer)"), {"p": f"tel {phone}"})
    assert phone in str(bad.value.orig)
    assert describe(bad.value).endswith('invalid input syntax for type integer: "…"')
    # Not null: the column's name stays, the row goes.
    with pytest.raises(IntegrityError) as null, engine.begin() as conn:
        conn.execute(text("INSERT INTO contact (phone) VALUES (:p)"), {"p": phone + "0"})
    said = describe(null.value)
    assert 'column "n"' in said and phone not in said


def test_a_constraint_violation_at_intake_reaches_neither_the_log_nor_the_body(api, app_log):
    phone = _phone()
    with api.engine.begin() as conn:
        conn.execute(text(REFUSE_PHONE.format(phone=phone)))
    _, lon, lat = interior_points(api.engine)[0]
    description = f"三号楼夜间噪音, 我是{NAME}, 电话{phone}"
    r = api.post_case({"lon": lon, "lat": lat, "category": "0599", "channel": "hotline_12345",
                       "description": description, "reporter_name": NAME, "reporter_phone": phone})
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal error; it has been logged.", "code": "internal_error"}
    lines = [json.loads(line) for line in app_log.getvalue().splitlines()]
    errors = [ln for ln in lines if ln["logger"] == "casegrid.api"]
    assert len(errors) == 1 and errors[0]["level"] == "error"
    # What someone fixing it needs is there: the constraint and the code that ran into it.
    assert "case_refuses_test_phone" in errors[0]["exc"] and "intake" in errors[0]["exc"]
    out = app_log.getvalue()
    for personal in (phone, phone[-4:] + ",", NAME, "电话", "Failing row"):
        assert personal not in out, personal
    assert [ln["status"] for ln in lines if ln["logger"] == "casegrid.request"] == [500]


def test_text_logs_and_any_logger_made_by_get_logger_are_redacted(engine, caplog):
    """The filter sits on the logger itself: a foreign logging set-up (here pytest's
    capture handler) gets the record already redacted, message arguments and traceback."""
    phone = _phone()
    exc = _violation(engine, phone)
    log = get_logger("casegrid.test_privacy_logs")
    with caplog.at_level(logging.INFO, logger="casegrid.test_privacy_logs"):
        log.warning("batch refused (%s); retrying one by one", exc)
        try:
            raise exc
        except IntegrityError:
            log.exception("database error")
    assert "case_refuses_test_phone" in caplog.text and "Traceback" in caplog.text
    assert phone not in caplog.text and NAME not in caplog.text
    assert "Failing row" not in caplog.text


def test_the_cli_prints_the_refusal_without_the_row(engine, capsys):
    from casegrid.cli._common import cli_errors

    phone = _phone()
    with engine.begin() as conn:
        conn.execute(text(REFUSE_PHONE.format(phone=phone)))

    @cli_errors
    def command() -> None:
        with engine.begin() as conn:
            conn.execute(text(
                'INSERT INTO "case" (channel, category_code, reported_at, reporter_name, '
                "reporter_phone) VALUES ('walk_in', '0599', now(), :n, :p)"), {"n": NAME, "p": phone})

    with pytest.raises(SystemExit) as done:
        command()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "case_refuses_test_phone" in err and "rolled back" in err
    assert phone not in err and NAME not in err


def test_the_servers_own_log_has_no_failing_row(engine, pg_cluster):
    """The embedded cluster logs errors tersely: the statement, never DETAIL's row."""
    phone = _phone()
    _violation(engine, phone)
    log_text = pg_cluster.log_file.read_text(encoding="utf-8", errors="replace")
    assert "case_refuses_test_phone" in log_text
    assert phone not in log_text and "Failing row" not in log_text
