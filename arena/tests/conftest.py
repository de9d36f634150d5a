import pytest


@pytest.fixture
def quick_leaderboard(settings):
    """Few bootstrap rounds and low thresholds: the leaderboard tests check behaviour, not precision."""
    settings.ARENA_LEADERBOARD_ROUNDS = 20
    settings.ARENA_LEADERBOARD_STYLE_ROUNDS = 3
    settings.ARENA_LEADERBOARD_MIN_VOTES = 1
    settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES = 4
    settings.ARENA_LEADERBOARD_ANCHOR = None
    # A handful of votes would make every model provisional (unranked): these tests check ranks.
    settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES = 0
    settings.ARENA_LEADERBOARD_PROVISIONAL_WIDTH = 1e9
