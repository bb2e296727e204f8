"""ASGI entry point for uvicorn: ``api.main:app`` (configured from the environment)."""

from api.app import create_app

app = create_app()
