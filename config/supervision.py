"""What `make run`'s supervisor (``config/management/commands/run_all.py``) does when a child exits,
decided from plain values (no Django, no processes).

The rules are the engine supervisor's (``serving.engine_plan``), one copy of each: a child that
exits is started again after ``backoff_s(failures)`` (5 s, 10 s, 20 s, ... at most 5 minutes);
after ``MAX_FAILURES`` exits in a row it is given up (left stopped, said loudly, the rest of the
stack runs on); a child that ran ``STABLE_S`` or longer before it exited starts its count afresh.
The supervisor never stops by itself: only Ctrl-C or SIGTERM stop it, and then everything it started.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.engine_plan import MAX_FAILURES, STABLE_S, backoff_s


@dataclass(frozen=True)
class AfterExit:
    failures: int  # exits in a row, this one included
    retry_at: float  # when to start it again (monotonic seconds)
    give_up: bool  # True: never started again by this supervisor


def after_exit(failures: int, ran_s: float, now: float, max_failures: int = MAX_FAILURES) -> AfterExit:
    """A child that had ``failures`` exits in a row before this one exited after running ``ran_s``."""
    failures = 1 if ran_s >= STABLE_S else failures + 1
    return AfterExit(failures, now + backoff_s(failures), failures >= max_failures)
