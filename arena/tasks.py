"""Celery tasks of the arena (the leaderboard refresh lands here)."""


def ratings_refresh_soon() -> None:
    """Placeholder until the leaderboard exists: votes need no follow-up yet."""
