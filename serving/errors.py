class EngineError(Exception):
    """An endpoint or engine did not do what was asked; the message is safe to show to staff."""
