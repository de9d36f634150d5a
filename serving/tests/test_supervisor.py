"""The engine supervisor: what it decides (``serving.engine_plan``, pure), which endpoints it runs,
the port of a new full fine-tune's endpoint, and a real failed start (an interpreter without vLLM)."""

import socket
import sys
from pathlib import Path

import pytest

from serving import services
from serving.engine_plan import DEAD, RUNNING, STARTING, Action, Observed, backoff_s, plan
from serving.engines import EngineSpec
from serving.local_models import LOCAL_MODELS
from serving.models import Endpoint, ServedModel
from serving.supervisor import EngineSupervisor, engine_spec, wanted_endpoints
from tests.factories import make_endpoint, make_model


def spec(name: str, port: int = 9000) -> EngineSpec:
    return EngineSpec(name=name, model_dir=f"/m/{name}", served_name=name, port=port, python="py",
                      log_path=Path(f"/l/{name}.log"))


def decide(wanted, observed=None, *, now=100.0, max_engines=0, max_failures=5):
    return plan({n: spec(n) for n in wanted}, observed or {}, now=now, max_engines=max_engines,
                max_failures=max_failures)


def test_missing_engines_start_and_running_or_starting_ones_are_left_alone():
    observed = {"a": Observed(spec("a"), RUNNING), "b": Observed(spec("b"), STARTING)}
    assert decide(["a", "b", "c"], observed) == [Action("start", "c")]


def test_an_engine_no_endpoint_wants_is_stopped_and_one_whose_settings_changed_is_restarted():
    observed = {"gone": Observed(spec("gone"), RUNNING), "moved": Observed(spec("moved", port=1), RUNNING)}
    assert decide(["moved"], observed) == [Action("stop", "gone", "no active model"),
                                           Action("stop", "moved", "its settings changed"),
                                           Action("start", "moved")]


def test_a_dead_engine_restarts_after_its_backoff_and_is_given_up_after_too_many_failures():
    dead = {"a": Observed(spec("a"), DEAD, failures=2, retry_at=110.0)}
    assert decide(["a"], dead, now=105.0) == []
    assert decide(["a"], dead, now=111.0) == [Action("start", "a", "restart")]
    gave_up = decide(["a"], {"a": Observed(spec("a"), DEAD, failures=5)}, max_failures=5)
    assert [(a.kind, a.name) for a in gave_up] == [("give_up", "a")] and "5 times" in gave_up[0].reason
    assert [backoff_s(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0] and backoff_s(50) == 300.0


def test_endpoints_beyond_the_cap_wait_in_priority_order_saying_why():
    actions = decide(["local", "a", "b"], {"local": Observed(spec("local"), RUNNING)}, max_engines=2)
    assert actions[0] == Action("start", "a")
    assert actions[1].kind == "wait" and actions[1].name == "b" and "ARENA_MAX_ENGINES=2" in actions[1].reason
    # a stopped engine frees its slot in the same round
    actions = decide(["b"], {"a": Observed(spec("a"), RUNNING)}, max_engines=1)
    assert actions == [Action("stop", "a", "no active model"), Action("start", "b")]


@pytest.mark.django_db
def test_the_supervisor_runs_managed_endpoints_with_an_active_model_local_models_first(settings):
    settings.ARENA_LOCAL_MODELS = ["smollm2"]
    full = make_endpoint(name="full-x", managed=True, model_dir="/m/x", served_name="x",
                         base_url="http://127.0.0.1:8117/v1", chat_template="/t.jinja")
    make_model(endpoint=full, kind="full")
    paused = make_endpoint(name="full-paused", managed=True, model_dir="/m/y")
    make_model(endpoint=paused, active=False)
    make_model(endpoint=make_endpoint(name="remote", model_dir="/m/z"))  # not managed
    make_model(endpoint=make_endpoint(name="local-gemma3", managed=True, model_dir="/m/g"))  # not enabled
    services.local_models_register()
    assert [e.name for e in wanted_endpoints()] == ["local-smollm2", "full-x"]
    local = engine_spec(Endpoint.objects.get(name="local-smollm2"))
    assert local == LOCAL_MODELS["smollm2"].engine_spec()  # same port, model, template and engine-smollm2.log
    x = engine_spec(full)
    assert (x.port, x.served_name, x.chat_template, x.log_path.name) == (8117, "x", "/t.jinja", "engine-full-x.log")


@pytest.mark.django_db
def test_a_full_fine_tune_gets_a_managed_endpoint_on_a_free_unused_port(settings, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.ARENA_ENGINE_PORT = sock.getsockname()[1] - services.MANAGED_PORT_OFFSET  # first port: taken
        first = sock.getsockname()[1]
        make_endpoint(base_url=f"http://127.0.0.1:{first + 1}/v1")  # second: a row has it
        parent = make_model(endpoint=make_endpoint(chat_template="/tpl.jinja"), generation={"temperature": 0.2},
                            license="Apache-2.0")
        (tmp_path / "config.json").write_text("{}")
        model = services.served_model_register_full(parent=parent, name="base-sft-j7", model_dir=str(tmp_path),
                                                    description="d")
    endpoint = model.endpoint
    assert endpoint.base_url == f"http://127.0.0.1:{first + 2}/v1"
    assert (endpoint.managed, endpoint.healthy, endpoint.kind, endpoint.served_name) == (True, False, "vllm",
                                                                                        "base-sft-j7")
    assert endpoint.model_dir == str(tmp_path) and endpoint.chat_template == "/tpl.jinja"
    assert (model.kind, model.parent, model.engine_model_id, model.license) == ("full", parent, "base-sft-j7",
                                                                                "Apache-2.0")
    assert model.generation == {"temperature": 0.2} and len(model.adapter_sha256) == 64
    assert not ServedModel.objects.healthy().filter(pk=model.pk).exists()  # until its engine answers


@pytest.mark.django_db(transaction=True)
def test_an_engine_that_cannot_start_is_retried_then_given_up_with_its_log_tail(settings, tmp_path):
    settings.ARENA_ENGINE_PYTHON = sys.executable  # the web environment has no vLLM: the engine exits at once
    settings.ARENA_DATA_DIR = tmp_path
    settings.ARENA_LOCAL_MODELS = []
    (tmp_path / "config.json").write_text("{}")
    endpoint = make_endpoint(name="full-broken", managed=True, model_dir=str(tmp_path), healthy=False,
                             base_url=f"http://127.0.0.1:{services.engine_port_choose()}/v1")
    make_model(endpoint=endpoint, kind="full")
    lines = []
    supervisor = EngineSupervisor(say=lines.append, max_engines=1, start_timeout_s=60)
    for attempt in range(1, 6):
        assert [a.kind for a in supervisor.reconcile()] == ["start"]
        held = supervisor.held["full-broken"]
        held.thread.join(60)
        assert held.failures == attempt and "vllm" in held.note.lower()
        held.retry_at = 0  # skip the backoff
    assert [a.kind for a in supervisor.reconcile()] == ["give_up"]
    endpoint.refresh_from_db()
    assert "failed 5 times in a row" in endpoint.last_error and "vllm" in endpoint.last_error.lower()
    assert not endpoint.healthy
    assert (tmp_path / "logs" / "engine-full-broken.log").exists()
    # deactivating its model stops wanting it: the supervisor forgets it (a new start is a fresh one)
    ServedModel.objects.filter(endpoint=endpoint).update(active=False)
    assert [a.kind for a in supervisor.reconcile()] == ["stop"] and supervisor.held == {}
