"""One clear line for a bad config or bad input, instead of a traceback."""
from __future__ import annotations

import sys
from typing import NoReturn


class ConfigError(SystemExit):
    """Raised for user errors; exits with status 2 and one line on stderr."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(2)

    def __str__(self) -> str:
        return self.message


def config_error(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise ConfigError(message)
