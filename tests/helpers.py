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
