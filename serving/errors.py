class EngineError(Exception):
    """An endpoint or engine did not do what was asked; the message is safe to show to staff."""


class EngineUnreachable(EngineError):
    """The engine did not answer (refused connection, timeout, 502/503/504): retry later, blame no model."""
