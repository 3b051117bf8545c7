"""The one-command local mode: every service in one process on SQLite with the in-process bus.

Part of the composition package: it imports each service's settings and ``create_app`` directly,
and no service imports it.
"""
