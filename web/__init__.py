"""The workbench's rendering: Jinja2 templates, their words (zh/en), action form
descriptions and the pages' own styles and scripts. HTTP handling is in
``api/routes/web.py``; every rule and query comes from ``cases/`` and ``geo/``."""
