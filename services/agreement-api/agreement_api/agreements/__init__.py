"""Cooperation agreements (*samarbeidsavtaler*): parties, lifecycle, versions and notice rules."""
