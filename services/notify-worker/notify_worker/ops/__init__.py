"""The operators' HTTP surface: notices, deliveries and attempts, and redelivery of dead letters."""
