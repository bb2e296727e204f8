"""Delivery channels of casegrid's notifications: each a small adapter with one method,
``send(message) -> Outcome`` (:mod:`notify.base`). The outbox they deliver from is
:mod:`notify.outbox`; the loop that drives them is :mod:`casegrid.worker`."""
