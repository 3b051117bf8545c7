"""Notices: the case read model, each case's notice schedule and its consent gate, notice events."""
