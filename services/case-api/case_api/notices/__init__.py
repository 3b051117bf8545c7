"""case-api's side of notices: the facts notify-worker puts in a notice, the detail view a notice
links to, and the contacts recipients name when they accept a notice (see docs/notices.md)."""
