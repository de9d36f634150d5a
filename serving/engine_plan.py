"""What the engine supervisor should do, decided from plain values (no Django, no processes).

``plan(wanted, observed, now=..., max_engines=..., max_failures=...)`` takes

* ``wanted``: endpoint name → ``EngineSpec`` of every engine that should run, in priority order
  (the supervisor lists the local models of `make run` first, then the oldest endpoints);
* ``observed``: endpoint name → ``Observed`` of every engine the supervisor holds: its spec, its
  phase (``starting``: a thread is starting it; ``running``: its process is alive; ``dead``: its
  start failed or its process exited), how many times in a row it failed, and when it may be
  tried again (backoff);

and returns the ``Action`` list, stops first:

* ``stop``: held but no longer wanted (all its models deactivated or retired, the row gone or no
  longer managed), or wanted with another spec (port, model directory, template changed);
* ``start``: wanted and not held, or dead and its backoff over, while fewer than ``max_engines``
  (0: no cap) are starting or running;
* ``wait``: wanted but over the cap (``reason`` says so; the endpoint's ``last_error`` shows it);
* ``give_up``: dead ``max_failures`` times in a row (``reason``: recorded once, with the log tail).

``backoff_s(failures)`` is the wait before the next try: 5 s, 10 s, 20 s, ... at most 5 minutes;
``MAX_FAILURES`` in a row is the give-up count and a process up ``STABLE_S`` has its count cleared
(the same rules for `make run`'s other children: ``config.supervision``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from serving.engines import EngineSpec

STARTING, RUNNING, DEAD = "starting", "running", "dead"
MAX_FAILURES = 5
#: A process up this long has its failure count cleared.
STABLE_S = 300.0


@dataclass(frozen=True)
class Observed:
    spec: EngineSpec
    phase: str  # STARTING, RUNNING or DEAD
    failures: int = 0
    retry_at: float = 0.0


@dataclass(frozen=True)
class Action:
    kind: str  # "start", "stop", "wait" or "give_up"
    name: str
    reason: str = ""


def backoff_s(failures: int) -> float:
    return min(5.0 * 2 ** max(0, failures - 1), 300.0)


def plan(wanted: Mapping[str, EngineSpec], observed: Mapping[str, Observed], *, now: float, max_engines: int,
         max_failures: int) -> list[Action]:
    stops = [Action("stop", name, "no active model" if name not in wanted else "its settings changed")
             for name, obs in observed.items() if name not in wanted or obs.spec != wanted[name]]
    stopped = {a.name for a in stops}
    held = {name: obs for name, obs in observed.items() if name not in stopped}
    busy = sum(obs.phase in (STARTING, RUNNING) for obs in held.values())
    actions = list(stops)
    for name in wanted:
        obs = held.get(name)
        if obs is not None and obs.phase in (STARTING, RUNNING):
            continue
        if obs is not None and obs.failures >= max_failures:
            actions.append(Action("give_up", name, f"its engine failed {obs.failures} times in a row; not restarted "
                                                   "(fix the cause, then deactivate and reactivate its model)"))
            continue
        if obs is not None and now < obs.retry_at:
            continue  # backing off
        if max_engines and busy >= max_engines:
            actions.append(Action("wait", name, f"waiting for an engine slot: {busy} engines already run "
                                                f"(ARENA_MAX_ENGINES={max_engines})"))
            continue
        busy += 1
        actions.append(Action("start", name, "restart" if obs is not None else ""))
    return actions
