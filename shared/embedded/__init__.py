"""The one-command local mode: every service in one process on SQLite with the in-process bus.

This package is a composition root, not shared service code: it loads the services by import
path the way uvicorn does, and no service imports it.
"""
