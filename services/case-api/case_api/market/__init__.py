"""The service market (servicetorg): providers, sessions, requests, appointments and check-in."""
