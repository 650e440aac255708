"""tmtool configuration (TOML).  See config.example.toml for every key."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key is missing, unknown or invalid.  ``key`` is the dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key '{key}': {message}")
        self.key = key
        self.reason = message
