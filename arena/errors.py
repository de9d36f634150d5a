"""The arena's one error type: a code and a message safe to show to the rater."""

from __future__ import annotations


class ArenaError(Exception):
    """``code`` names the refusal (docs/battle-api.md); ``details`` are extra JSON-safe fields
    of the error frame (e.g. ``retry_after``)."""

    def __init__(self, code: str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
