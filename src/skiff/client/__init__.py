"""The Engine API client used by the CLI. Never imports the engine."""
