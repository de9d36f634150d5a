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


@pytest.fixture
def hold_rules(settings):
    """The documented defaults of the pairing holds, on (the suite's other tests may turn accounting off)."""
    settings.ARENA_ACCOUNTING = True
    settings.ARENA_PAIRING_MAX_ERROR_RATE = 0.5
    settings.ARENA_PAIRING_ERROR_MIN_RESPONSES = 5
    settings.ARENA_PAIRING_ERROR_MIN_RATERS = 3
