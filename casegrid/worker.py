"""The delivery worker (``casegrid worker``): reminders, routing, delivery, heartbeat.

Each pass, in short transactions of its own:

1. writes the reminders and escalations now due (:func:`cases.reminders.send_reminders`;
   at most every ``REMIND_EVERY_S`` while it is busy);
2. routes new outbox events into deliveries (:func:`notify.outbox.route_events`);
3. claims due deliveries in batches (``FOR UPDATE SKIP LOCKED``), sends each batch through
   its channels in parallel while holding the locks, and records every attempt in the
   same transaction, until nothing more is due;
4. teaches the address memory from the GPS/app cases registered since it last looked
   (:func:`geo.address_learning.learn_new_cases`, at most every
   ``CASEGRID_ADDRESS_LEARN_EVERY_S`` unless a backlog remains; a failure there is logged and
   never holds up deliveries);
5. records its heartbeat (:mod:`casegrid.heartbeat`), also before its first pass, and,
   once a day, warns in its log when the working calendar is about to run out
   (:class:`cases.calendar_horizon.HorizonLog`).

A worker killed at any point loses nothing: an uncommitted batch is sent again by the next
worker to claim it (at least once). ``--once`` runs one pass and exits (cron); otherwise the
worker waits between passes that found nothing to do, until a new event's
transaction commits (it LISTENs on :data:`cases.notices.WAKE_CHANNEL`) or
``CASEGRID_WORKER_POLL_S`` has passed (deliveries whose retry time has come, reminders).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import psycopg
from sqlalchemy import Engine, text

from casegrid.heartbeat import record_heartbeat
from casegrid.logs import get_logger
from casegrid.settings import Settings
from cases.calendar_horizon import HorizonLog, today_in_calendar_zone
from cases.notices import WAKE_CHANNEL
from cases.reminders import send_reminders
from cases.retention import nightly_purge
from notify import outbox
from notify.base import Channel, Outcome

log = get_logger("casegrid.worker")
ROUTE_BATCH = 1000  # events routed per transaction
REMIND_EVERY_S = 20.0
BEAT_EVERY_S = 30.0  # heartbeats within a long pass


def default_channels(settings: Settings) -> dict[str, Channel]:
    """The channels the settings enable (webhook always: a delivery exists only for a URL)."""
    from notify.mail import EmailChannel
    from notify.sms import SmsChannel
    from notify.webhook import WebhookChannel

    out: dict[str, Channel] = {"webhook": WebhookChannel(settings.webhook_secret,
                                                         settings.webhook_timeout_s)}
    if settings.sms_gateway_url:
        out["sms"] = SmsChannel(settings)
    if settings.smtp_host:
        out["email"] = EmailChannel(settings)
    return out


class Worker:
    """One delivery worker; :meth:`run_pass` is one pass, :meth:`run` the loop."""

    def __init__(self, engine: Engine, settings: Settings, name: str | None = None,
                 channels: dict[str, Channel] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.channels = channels if channels is not None else default_channels(settings)
        self._listener = None  # a pooled connection LISTENing for new events (run())
        self._reminded = -REMIND_EVERY_S  # monotonic time of the last reminder pass
        self._beat = 0.0  # ... and of the last heartbeat
        self.pool = ThreadPoolExecutor(max_workers=settings.worker_concurrency,
                                       thread_name_prefix="casegrid-send")
        self.horizon = HorizonLog(settings.calendar_horizon_days, log)
        self._learned = -settings.address_learn_every_s  # monotonic time of the last learning
        self._learn_backlog = False

    def _now(self, now: datetime | None) -> datetime:
        if now is not None:
            return now
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT clock_timestamp()")).scalar_one()

    def run_pass(self, now: datetime | None = None) -> dict[str, int]:
        """One pass at ``now`` (default: the database's clock); counts of what it did."""
        totals = {"reminders": 0, "routed": 0, "delivered": 0, "retrying": 0, "failed": 0}
        with self.engine.connect() as conn:  # once a day: warn before the calendar runs out
            self.horizon.check(conn, today_in_calendar_zone(now) if now else None)
        # Reminders fall due by the minute, not by the event: a busy loop checks them every
        # REMIND_EVERY_S (a pass at an explicit time, and --once, always).
        if now is not None or time.monotonic() - self._reminded >= REMIND_EVERY_S:
            with self.engine.begin() as conn:
                reminded = send_reminders(conn, self._now(now), self.settings)
                totals["reminders"] = sum(reminded.values())
            self._reminded = time.monotonic()
        # Once a night when enabled: personal data past its retention (cases.retention).
        purged = nightly_purge(self.engine, self.settings, now)
        if purged is not None:
            log.info("privacy purge: %d cases in %d transactions", purged.cases, purged.batches)
        while True:
            with self.engine.begin() as conn:
                n = outbox.route_events(conn, self.settings, self._now(now), ROUTE_BATCH)
            totals["routed"] += n
            if n < ROUTE_BATCH:  # caught up (events committed meanwhile wait for the next pass)
                break
        # Deliveries due when the routing ended: a delivery that fails now is not tried
        # again in this pass, however short its backoff.
        cutoff = self._now(now)
        while True:
            done = self.deliver_batch(cutoff, now)
            for k in ("delivered", "retrying", "failed"):
                totals[k] += done[k]
            if sum(done.values()) == 0:
                break
            if time.monotonic() - self._beat >= BEAT_EVERY_S:  # a long backlog: still alive
                self._heartbeat(totals)
        totals["address_cases"] = self.learn_addresses(now)
        self._heartbeat(totals)
        return totals

    def learn_addresses(self, now: datetime | None = None) -> int:
        """One batch of the address learner when it is due (step 4); cases read."""
        from geo.address_learning import BATCH, learn_new_cases

        every = self.settings.address_learn_every_s
        if not every or (now is None and not self._learn_backlog
                         and time.monotonic() - self._learned < every):
            return 0
        try:
            with self.engine.begin() as conn:
                report = learn_new_cases(conn, self.settings)
        except Exception:  # noqa: BLE001 - learning must not stop the deliveries
            log.exception("address learning failed; trying again in %s s", every)
            report = None
        self._learned = time.monotonic()
        self._learn_backlog = report is not None and report.cases_read >= BATCH
        if report is not None and report.learned:
            log.info("address memory: learned %d sightings (cases up to %d)", report.learned,
                     report.last_case_id)
        return report.cases_read if report is not None else 0

    def _heartbeat(self, info: dict) -> None:
        with self.engine.begin() as conn:
            record_heartbeat(conn, self.name, info)
        self._beat = time.monotonic()

    def deliver_batch(self, cutoff: datetime, now: datetime | None = None) -> dict[str, int]:
        """Claim one batch of deliveries due by ``cutoff``, send them, record the outcomes
        (at ``now``, default the database's clock), commit."""
        with self.engine.begin() as conn:
            claimed = outbox.claim_due(conn, cutoff, self.settings.worker_batch)
            if not claimed:
                return {"delivered": 0, "retrying": 0, "failed": 0}
            outcomes = list(self.pool.map(self._send, claimed))
            at = now or conn.execute(text("SELECT clock_timestamp()")).scalar_one()
            return outbox.record_outcomes(conn, claimed, outcomes, self.settings, at, self.name)

    def _send(self, c: outbox.Claimed) -> tuple[Outcome, float]:
        channel = self.channels.get(c.channel)
        t0 = time.perf_counter()
        if channel is None:
            outcome = Outcome(False, None, f"channel {c.channel} is not configured")
        else:
            try:
                outcome = channel.send(c.message)
            except Exception as exc:  # noqa: BLE001 - a channel bug must not lose the batch
                log.exception("channel %s failed on delivery %s", c.channel, c.message.delivery_id)
                outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
        return outcome, (time.perf_counter() - t0) * 1000

    def run(self, stop: threading.Event | None = None) -> None:
        """Run passes until ``stop`` is set, sleeping between passes that found no work."""
        stop = stop or threading.Event()
        log.info("worker %s started", self.name)
        self._heartbeat({"state": "started"})
        while not stop.is_set():
            try:
                totals = self.run_pass()
            except Exception:  # noqa: BLE001 - keep serving; the database may come back
                log.exception("worker pass failed; retrying in %s s", self.settings.worker_poll_s)
                totals = {}
            if not any(totals.values()):
                self._idle(stop)
        if self._listener is not None:
            self._listener.invalidate()  # autocommit and LISTENing: not for the pool

    def _idle(self, stop: threading.Event) -> None:
        """Wait for a new event's commit, or the poll interval, whichever comes first."""
        if self._listener is None:
            try:
                self._listener = self.engine.raw_connection()
                self._listener.driver_connection.autocommit = True
                self._listener.driver_connection.execute(f"LISTEN {WAKE_CHANNEL}")
            except Exception:  # noqa: BLE001 - fall back to polling
                log.warning("cannot LISTEN for new events; polling every %s s",
                            self.settings.worker_poll_s, exc_info=True)
                self._listener = None
                stop.wait(self.settings.worker_poll_s)
                return
        try:
            for _ in self._listener.driver_connection.notifies(
                    timeout=self.settings.worker_poll_s, stop_after=1):
                pass
        except psycopg.Error:
            log.warning("lost the LISTEN connection; reconnecting at the next wait")
            self._listener.invalidate()
            self._listener = None

