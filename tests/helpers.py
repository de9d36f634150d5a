"""Small helpers shared by the cross-app tests."""

from concurrent.futures import ThreadPoolExecutor


def off_the_event_loop(fn):
    """Run ORM work in a thread of its own: Playwright's sync API runs an event loop in this
    one, where Django refuses database calls."""
    from django.db import connection

    def work():
        try:
            return fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def shared_data_file(relative: str):
    """A file of ../shared/data. CI lays ../shared beside the clone, so there a missing file fails
    the test; elsewhere it is skipped with the path."""
    import os
    from pathlib import Path

    import pytest

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / relative
    if not path.exists():
        if os.environ.get("CI") or os.environ.get("ARENA_REQUIRE_REAL_PARTS") == "1":
            pytest.fail(f"shared data file missing: {path}")
        pytest.skip(f"shared data file missing: {path}")
    return path
