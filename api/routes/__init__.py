"""Endpoint groups; every module here that defines ``router`` is mounted by api.app."""
