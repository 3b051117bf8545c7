"""Receipts from a notice's recipient, and escalation to the coordinator when none comes."""
