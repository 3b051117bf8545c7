"""Deliveries: claiming due notices, signing and POSTing them to webhook endpoints with retries,
endpoint health and redelivery of dead letters."""
