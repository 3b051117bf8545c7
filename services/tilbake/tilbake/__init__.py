"""The composition package: the `tilbake` command and the embedded runner.

It is the one place that knows every service. It imports case_api, agreement_api and
notify_worker directly, and nothing imports it: `shared` sits below the services and the services
sit below this package (the import-linter contracts in pyproject.toml check both).
"""
