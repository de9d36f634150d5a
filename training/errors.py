"""The training app's refusal: one exception with a safe message and every reason."""

from __future__ import annotations


class TrainingError(Exception):
    """A request the training app refuses; ``problems`` lists every reason (e.g. each bad row)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        return "\n".join([self.message, *self.problems])
