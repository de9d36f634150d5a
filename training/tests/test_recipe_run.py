"""The real training subprocess (``<engine python> -m training.recipes.run JOB_DIR``) on the
real SmolLM2-135M-Instruct and real data, for 2 steps each: SFT on OpenAssistant rows, then DPO
on HH-RLHF rows continuing that adapter, a cancel mid-run and the failures. CPU, a few minutes
on 2 cores.

Skipped unless the engine env and the converted model exist (failed
instead under ``ARENA_REQUIRE_REAL_PARTS=1``); ``ARENA_ENGINE_PYTHON`` and
``ARENA_TEST_BASE_MODEL`` override the default locations.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import missing_part
from training.formats import parse_dataset, write_jsonl
from training.recipes import progress
from training.recipes.config import apply_overrides, preset
from training.recipes.servability import adapter_servability_problems

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"  # the built-in datasets shipped with the repository
ARENA_ENGINE_PYTHON = Path(os.environ.get("ARENA_ENGINE_PYTHON", REPO_ROOT / ".venv-engine" / "bin" / "python"))
BASE_MODEL = Path(
    os.environ.get("ARENA_TEST_BASE_MODEL", REPO_ROOT / "var" / "models" / "smollm2-135m-instruct")
)
RUN_TIMEOUT_S = 900  # a hang guard only; nothing asserts on time

pytestmark = pytest.mark.training


@pytest.fixture(autouse=True)
def _real_parts():
    """Skip without the engine env / model -- or fail under ARENA_REQUIRE_REAL_PARTS=1 (CI)."""
    if not ARENA_ENGINE_PYTHON.is_file():
        missing_part(f"engine python not found at {ARENA_ENGINE_PYTHON}")
    if not (BASE_MODEL / "config.json").is_file():
        missing_part(f"base model not found at {BASE_MODEL} (no config.json)")


# cpu-smoke, shrunk further: 2 optimizer steps of 2 rows, 128 tokens
TINY = ["max_steps=2", "per_device_train_batch_size=2", "max_length=128", "num_threads=2", "max_train_rows=8"]


def make_job(tmp_path: Path, recipe: str, rows: list[dict], overrides=(), **job_overrides) -> Path:
    """A job dir for ``recipe`` (sft/dpo) on the cpu-smoke preset + TINY; job.json keys overridable."""
    job_dir = tmp_path / f"job-{recipe}"
    dataset = write_jsonl(rows, tmp_path / f"{recipe}.jsonl")
    config = apply_overrides(preset(recipe, "cpu-smoke"), [*TINY, *overrides]).to_dict()
    spec = dict(
        method=recipe,
        base_model_path=BASE_MODEL,
        dataset_path=dataset,
        output_dir=tmp_path / f"adapter-{recipe}",
        config=config,
        max_lora_rank=16,
        device="cpu",
    )
    spec.update(job_overrides)
    progress.write_job(job_dir, **spec)
    return job_dir


def start(job_dir: Path) -> subprocess.Popen:
    log = open(job_dir / "run.log", "wb")  # noqa: SIM115 - closed by the child's exit
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [str(ARENA_ENGINE_PYTHON), "-m", "training.recipes.run", str(job_dir)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


def run(job_dir: Path) -> tuple[int, list[dict]]:
    proc = start(job_dir)
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        proc.kill()
    return rc, progress.read_events(job_dir / progress.PROGRESS_FILE)


def log_tail(job_dir: Path) -> str:
    return (job_dir / "run.log").read_text(errors="replace")[-4000:]


def safetensors_header(path: Path) -> dict:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    return header


def assert_servable_adapter(adapter_dir: Path) -> None:
    assert sorted(p.name for p in adapter_dir.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] <= 16 and not cfg["use_dora"]
    assert not cfg.get("modules_to_save")
    assert set(cfg["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert adapter_servability_problems(adapter_dir, 16) == []
    tensors = safetensors_header(adapter_dir / "adapter_model.safetensors")
    assert tensors and all(".lora_A." in k or ".lora_B." in k for k in tensors)
    assert not any("embed" in k or "lm_head" in k for k in tensors)
    q_a = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert q_a["shape"] == [cfg["r"], 576] and q_a["dtype"] == "F32"


def assert_progress(events: list[dict], method: str, total_steps: int, num_rows: int = 8) -> dict:
    names = [e["event"] for e in events]
    assert names[0] == "init" and names[1] == "start" and names[-1] == "done", names
    assert names.count("done") == 1 and "error" not in names
    start_ev = events[1]
    assert start_ev["method"] == method and start_ev["total_steps"] == total_steps
    assert start_ev["num_rows"] == num_rows and 0 < start_ev["num_train_rows"] <= num_rows
    logs = [e for e in events if e["event"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, total_steps + 1))
    for e in logs:
        assert e["total_steps"] == total_steps and e["elapsed_s"] >= 0 and e["epoch"] > 0
        assert isinstance(e["loss"], float) and "learning_rate" in e and "grad_norm" in e
    done = events[-1]
    metrics = done["metrics"]
    assert metrics["steps"] == total_steps and metrics["peak_rss_mb"] > 100
    assert metrics["s_per_step"] > 0 and isinstance(metrics["train_loss"], float)
    return done


@pytest.fixture(scope="module")
def sft_rows() -> list[dict]:
    result = parse_dataset(DATA_DIR / "sft_chat/oasst_en_messages.jsonl", "messages")
    assert result.ok
    return result.rows[:8]


@pytest.fixture(scope="module")
def dpo_rows() -> list[dict]:
    result = parse_dataset(DATA_DIR / "hh_rlhf/helpful-base_test.jsonl.gz", "hh-rlhf")
    assert result.ok
    # short single-turn rows, so nothing is truncated away at 128 tokens
    short = [r for r in result.rows if len(r["prompt"]) == 1 and len(json.dumps(r)) < 600]
    return short[:8]


def test_cancel_mid_run(tmp_path, sft_rows):
    job_dir = make_job(tmp_path, "sft", sft_rows, overrides=["max_steps=40"])
    proc = start(job_dir)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not any(e["event"] == "log" for e in progress.read_events(job_dir / progress.PROGRESS_FILE)):
            assert proc.poll() is None, log_tail(job_dir)
            assert time.monotonic() < deadline, "no log event"
            time.sleep(0.2)
        progress.request_cancel(job_dir)
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        proc.kill()
    assert rc == progress.EXIT_CANCELLED, log_tail(job_dir)
    events = progress.read_events(job_dir / progress.PROGRESS_FILE)
    final = events[-1]
    assert final["event"] == "cancelled" and [e["event"] for e in events].count("cancelled") == 1
    assert 1 <= final["step"] < final["total_steps"] == 40
    assert "done" not in [e["event"] for e in events]
    assert not (tmp_path / "adapter-sft").exists() and not (job_dir / "trainer").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_cancel_before_start(tmp_path, sft_rows):
    job_dir = make_job(tmp_path, "sft", sft_rows)
    progress.request_cancel(job_dir)
    rc, events = run(job_dir)
    assert rc == progress.EXIT_CANCELLED, log_tail(job_dir)
    assert [e["event"] for e in events] == ["init", "cancelled"]
    assert not (tmp_path / "adapter-sft").exists()


@pytest.mark.parametrize(
    "job_overrides, expected",
    [
        (
            {"base_model_path": "/nonexistent/model"},
            "base model /nonexistent/model is not a local model directory",
        ),
        ({"config": {"lora_r": 64, "max_steps": 0, "bogus": 1}}, "max_steps: 0 is out of range"),
        ({"config": {"lora_r": 64}}, "lora_r: rank 64 is above the vLLM server's --max-lora-rank 16"),
        ({"method": "ppo"}, "job.json method must be one of sft, dpo, kto, reward, grpo, pretrain, got 'ppo'"),
    ],
)
def test_bad_job_gives_error_event(tmp_path, sft_rows, job_overrides, expected):
    job_dir = make_job(tmp_path, "sft", sft_rows, **job_overrides)
    rc, events = run(job_dir)
    assert rc == progress.EXIT_ERROR, log_tail(job_dir)
    assert [e["event"] for e in events] == ["init", "error"]
    assert expected in events[-1]["error"] and events[-1]["message"]
    assert not (tmp_path / "adapter-sft").exists()


def test_crash_inside_training_reports_traceback(tmp_path, sft_rows):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')  # no tokenizer, no weights
    job_dir = make_job(tmp_path, "sft", sft_rows, base_model_path=broken)
    rc, events = run(job_dir)
    assert rc == progress.EXIT_ERROR, log_tail(job_dir)
    assert [e["event"] for e in events] == ["init", "error"]
    assert "Traceback (most recent call last)" in events[-1]["error"]
    assert len(events[-1]["error"]) <= progress.ERROR_TAIL_CHARS
    assert "Traceback" in log_tail(job_dir)


def safetensors_bytes(path: Path) -> dict[str, bytes]:
    """Each tensor's raw bytes (the web env has no torch)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0] : 8 + n + v["data_offsets"][1]] for k, v in header.items()}


def test_sft_two_steps_then_dpo_continues_its_adapter_against_it_as_reference(tmp_path, sft_rows, dpo_rows):
    """SFT from the base, then DPO from that adapter. (SFT and DPO from the base are trained by a
    real worker in tests/test_training_loop.py, which checks their recipe events and adapters too.)"""
    sft_job = make_job(tmp_path, "sft", sft_rows)
    rc, events = run(sft_job)
    assert rc == progress.EXIT_OK, log_tail(sft_job)
    sft_adapter = tmp_path / "adapter-sft"
    done = assert_progress(events, "sft", 2)
    assert Path(done["adapter_dir"]) == sft_adapter
    assert_servable_adapter(sft_adapter)
    assert not (sft_job / "trainer").exists()  # trainer scratch dir removed, no checkpoints

    dpo_job = make_job(tmp_path, "dpo", dpo_rows, init_adapter_path=sft_adapter)
    assert json.loads((dpo_job / progress.JOB_FILE).read_text())["init_adapter_path"] == str(sft_adapter)
    rc, events = run(dpo_job)
    assert rc == progress.EXIT_OK, log_tail(dpo_job)
    assert_progress(events, "dpo", 2)
    start_ev = events[1]
    assert start_ev["init_adapter_path"] == str(sft_adapter) and start_ev["reference"] == "init_adapter"
    assert start_ev["lora"]["r"] == 16
    # The reference is the SFT policy itself: before the first update policy and reference
    # agree, so the first step's implicit rewards are zero (against the base they would not be).
    first = next(e for e in events if e["event"] == "log")
    assert abs(first["rewards/chosen"]) < 1e-3 and abs(first["rewards/rejected"]) < 1e-3

    dpo_adapter = tmp_path / "adapter-dpo"
    assert_servable_adapter(dpo_adapter)

    def shape_of(adapter_dir: Path) -> tuple:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
        return cfg["r"], cfg["lora_alpha"], sorted(cfg["target_modules"]), cfg["base_model_name_or_path"]

    assert shape_of(dpo_adapter) == shape_of(sft_adapter)  # still servable on the same base
    old = safetensors_bytes(sft_adapter / "adapter_model.safetensors")
    new = safetensors_bytes(dpo_adapter / "adapter_model.safetensors")
    assert old.keys() == new.keys() and old != new


def test_an_init_adapter_without_its_config_gives_an_error_event(tmp_path, dpo_rows):
    not_an_adapter = tmp_path / "not-an-adapter"
    not_an_adapter.mkdir()
    job_dir = make_job(tmp_path, "dpo", dpo_rows, init_adapter_path=not_an_adapter)
    rc, events = run(job_dir)
    assert rc == progress.EXIT_ERROR, log_tail(job_dir)
    assert [e["event"] for e in events] == ["init", "error"]
    assert (
        "cannot be continued" in events[-1]["error"]
        and "adapter_config.json is missing" in events[-1]["error"]
    )
    assert not (tmp_path / "adapter-dpo").exists()
