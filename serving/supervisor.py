"""The engine supervisor: one local vLLM process per managed endpoint that should run.

Run by `make run` (``config/management/commands/run_all.py``, every 2 s beside its other
children) or alone by ``manage.py run_engines`` (an engine host, next to its GPUs). One supervisor
per database: two would start the same engines twice.

* Wanted (``wanted_endpoints``): managed vLLM endpoints with a ``model_dir`` and at least one active
  served model -- the local models of `make run` (``local-<key>``, only those enabled by
  ``ARENA_LOCAL_MODELS``, first, on their own ports and ``engine-<key>.log``) and the engines of
  full fine-tunes (``serving.services.served_model_register_full``; ``engine-<endpoint>.log``).
* Each round (``reconcile``) observes the engines it holds, asks ``serving.engine_plan.plan`` what
  to do and does it: starts in threads (``EngineProcess.start`` + ``wait_ready``, then
  ``services.endpoint_refresh`` so the endpoint turns healthy with its adapters loaded); restarts
  a dead engine after a backoff, gives up after ``MAX_FAILURES`` failures in a row; stops the
  engine (its whole process group) of an endpoint whose models were all deactivated or retired;
  keeps at most ``ARENA_MAX_ENGINES`` running (``ARENA_MAX_ENGINES``, 0: no cap). Why an endpoint
  waits or was given up on is written to its ``last_error`` (shown in the admin).
* ``stop_all`` stops every engine it started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Exists, OuterRef

from serving import services
from serving.engine_plan import DEAD, MAX_FAILURES, RUNNING, STABLE_S, STARTING, Observed, backoff_s, plan
from serving.engines import EngineProcess, EngineSpec, log_tail
from serving.errors import EngineError
from serving.local_models import ENDPOINT_PREFIX, LOCAL_MODELS, enabled_local_models
from serving.models import Endpoint, ServedModel

logger = logging.getLogger(__name__)


def wanted_endpoints() -> list[Endpoint]:
    """The managed endpoints whose engine should run, local models first, then by age."""
    enabled = {m.endpoint_name for m in enabled_local_models()}
    local = {m.endpoint_name for m in LOCAL_MODELS.values()}
    active = ServedModel.objects.filter(endpoint=OuterRef("pk"), active=True)
    rows = (Endpoint.objects.filter(managed=True, kind=Endpoint.Kind.VLLM).exclude(model_dir="")
            .filter(Exists(active)).order_by("created_at", "pk"))
    rows = [e for e in rows if e.name in enabled or e.name not in local]
    return sorted(rows, key=lambda e: e.name not in enabled)


def engine_spec(endpoint: Endpoint) -> EngineSpec:
    """The engine of a managed endpoint: the same spec `make run` always used for a local model."""
    parts = urlsplit(endpoint.base_url)
    key = endpoint.name.removeprefix(ENDPOINT_PREFIX)
    return EngineSpec(
        name=key, model_dir=endpoint.model_dir, served_name=endpoint.served_name or endpoint.name,
        port=parts.port or 80, python=settings.ARENA_ENGINE_PYTHON, host=parts.hostname or "127.0.0.1",
        log_path=settings.ARENA_DATA_DIR / "logs" / f"engine-{key}.log", chat_template=endpoint.chat_template or None,
        device=settings.ARENA_ENGINE_DEVICE, extra_args=[str(a) for a in endpoint.extra_args or []],
    )


@dataclass
class _Held:
    engine: EngineProcess
    thread: threading.Thread | None = None
    failures: int = 0
    retry_at: float = 0.0
    ready_at: float | None = None
    note: str = ""  # why it is down, for last_error
    cancelled: bool = False  # stopped while its start thread runs


class EngineSupervisor:
    def __init__(self, *, say: Callable[[str], None] | None = None, max_engines: int | None = None,
                 start_timeout_s: float | None = None):
        self.say = say or logger.info
        self.max_engines = settings.ARENA_MAX_ENGINES if max_engines is None else max_engines
        self.start_timeout_s = start_timeout_s or settings.ARENA_ENGINE_START_TIMEOUT_S
        self.held: dict[str, _Held] = {}
        self.lock = threading.Lock()
        self.notes: dict[str, str] = {}  # endpoint name -> last_error written by us

    # ------------------------------------------------------------------ one round

    def reconcile(self) -> list:
        """Observe, plan, act; returns the actions taken."""
        rows = {e.name: e for e in wanted_endpoints()}
        wanted = {name: engine_spec(e) for name, e in rows.items()}
        now = time.monotonic()
        with self.lock:
            observed = {name: self._observe(name, h, now) for name, h in self.held.items()}
        actions = plan(wanted, observed, now=now, max_engines=self.max_engines, max_failures=MAX_FAILURES)
        for action in actions:
            if action.kind == "stop":
                self._stop(action.name, action.reason)
            elif action.kind == "start":
                self._start(rows[action.name], wanted[action.name])
            elif action.kind == "give_up":
                held = self.held[action.name]
                self._note(action.name, f"{action.reason}:\n{held.note}")
            elif action.kind == "wait":
                self._note(action.name, action.reason)
        return actions

    def _observe(self, name: str, held: _Held, now: float) -> Observed:
        if held.thread is not None and held.thread.is_alive():
            phase = STARTING
        elif held.engine.alive():
            phase = RUNNING
            if held.ready_at is not None and now - held.ready_at > STABLE_S:
                held.failures = 0
        else:
            if held.ready_at is not None:  # it was up and died: one more failure
                held.failures += 1
                held.retry_at = now + backoff_s(held.failures)
                held.note = f"engine exited with code {held.engine.process.returncode if held.engine.process else '?'}:" \
                            f"\n{log_tail(held.engine.spec.log_path)}"
                held.ready_at = None
                self.say(f"engine {name} died; restarting in {backoff_s(held.failures):.0f} s")
            phase = DEAD
        return Observed(held.engine.spec, phase, held.failures, held.retry_at)

    # ------------------------------------------------------------------ actions

    def _start(self, endpoint: Endpoint, spec: EngineSpec) -> None:
        with self.lock:
            held = self.held.get(endpoint.name)
            if held is None or held.engine.spec != spec:
                held = self.held[endpoint.name] = _Held(EngineProcess(spec))
            held.engine.process = None
            held.thread = threading.Thread(target=self._run_start, args=(endpoint.pk, endpoint.name, held),
                                           name=f"engine-{endpoint.name}", daemon=True)
        self.say(f"engine {spec.name}: starting on {spec.root_url} (log: {spec.log_path})")
        held.thread.start()

    def _run_start(self, endpoint_id: int, name: str, held: _Held) -> None:
        try:
            try:
                held.engine.start()
                if held.cancelled:  # stopped before its process existed: stop() found nothing to stop
                    held.engine.stop()
                    return
                held.engine.wait_ready(self.start_timeout_s)
            except EngineError as exc:
                held.engine.stop()
                if held.cancelled:
                    return
                with self.lock:
                    held.failures += 1
                    held.retry_at = time.monotonic() + backoff_s(held.failures)
                    held.note = str(exc)
                self.say(f"engine {held.engine.spec.name} failed to start ({held.failures} in a row): "
                         f"{str(exc).splitlines()[0]}")
                return
            held.ready_at = time.monotonic()
            close_old_connections()
            endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
            if endpoint is not None:
                self.notes.pop(name, None)
                services.endpoint_refresh(endpoint)  # adapters re-loaded before it enters battles
            self.say(f"engine {held.engine.spec.name}: ready on {held.engine.spec.root_url}")
        except Exception:  # noqa: BLE001 - a thread must not die silently
            logger.exception("engine %s: start thread failed", name)
        finally:
            connection.close()

    def _stop(self, name: str, reason: str) -> None:
        with self.lock:
            held = self.held.pop(name, None)
        if held is None:
            return
        held.cancelled = True
        if held.engine.alive() or (held.thread is not None and held.thread.is_alive()):
            self.say(f"engine {held.engine.spec.name}: stopping ({reason})")
        held.engine.stop()
        self.notes.pop(name, None)

    def _note(self, name: str, text: str) -> None:
        """Record why an endpoint is down on its row (again when a health check overwrote it)."""
        text = text[:2000]
        if self.notes.get(name) != text:
            self.say(f"engine {name}: {text.splitlines()[0]}")
        self.notes[name] = text
        Endpoint.objects.filter(name=name).exclude(last_error=text).update(last_error=text, healthy=False)

    def stop_all(self) -> None:
        for name in list(self.held):
            self._stop(name, "shutting down")

    def pgids(self) -> dict[str, int | None]:
        """Each held engine's process group (tests check it is gone after a stop)."""
        return {name: held.engine.pgid for name, held in self.held.items()}

    def run(self, stopping: threading.Event, poll_s: float = 2.0) -> None:
        """Reconcile every ``poll_s`` until ``stopping`` is set, then stop every engine."""
        try:
            while not stopping.is_set():
                try:
                    self.reconcile()
                except Exception:  # noqa: BLE001 - a lost database must not take the engines down
                    logger.exception("engine supervisor round failed; retrying")
                    close_old_connections()
                stopping.wait(poll_s)
        finally:
            self.stop_all()
