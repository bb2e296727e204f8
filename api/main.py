"""ASGI entry point for uvicorn: ``api.main:app`` (configured from the environment).

Each uvicorn worker imports this module once. Everything imported by then (FastAPI,
SQLAlchemy, pandas, the geo and map stack: about 260,000 objects the garbage collector
tracks) lives as long as the worker, yet each full collection walked all of it: under load
a worker stopped for hundreds of milliseconds every few seconds, which was the serving
stack's p99 (bench/RESULTS.md, issue 20). ``gc.freeze()``, the standard library's documented
call for long-lived objects, moves them out of the collector's generations, so a full
collection walks only what requests made since.
"""

import gc

from api.app import create_app

app = create_app()

gc.collect()  # what the imports left as garbage is freed, not frozen
gc.freeze()
