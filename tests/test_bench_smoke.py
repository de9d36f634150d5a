"""Every benchmark under ``bench/`` runs at its ``--smoke`` size, so that a change that breaks one
(a new not-null column its loader leaves out, a renamed function) fails here instead of surprising
the next person who measures. Each is a real run of the script in a subprocess, as a person runs
it; the test checks it ends cleanly and prints the line that carries its figures. The figures
themselves are not checked: no timing assertions (tests/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import missing_part, shared_data_dir

REPO = Path(__file__).resolve().parents[1]

#: (script and arguments, a text its output must contain, what it needs besides the web environment)
BENCHES = [
    (["ratings_speed.py", "--smoke"], "published board 2024-08-13", {"shared"}),
    (["read_speed.py", "--smoke"], "end to end, bootstrap:", {"shared"}),
    (["cli_speed.py", "--smoke"], "ratio (a)/(b): wall", {"shared"}),
    (["sampling.py", "--smoke"], "newcomer / active, votes for the new model", {"shared"}),
    (["accounting.py", "--smoke"], "vote path    median on", set()),
    (["training_speed.py", "--smoke"], "smoke: sft ", {"engine"}),
    (["training_methods.py", "--smoke"], "Part 1", {"engine"}),
    (["key_attack.py", "--smoke"], "Cost of the leave-one-key-out test", set()),
    (["predictive.py", "--smoke"], "uniform 1/3 each", {"shared"}),
    (["identity_words.py", "--smoke"], "flag rate:", {"shared"}),
    (["battle_latency.py", "--smoke", "--vllm-url", "{vllm}"], "direct vLLM time to first token", {"vllm"}),
    # Gemma is not converted for the tests: both sides on SmolLM2 checks the bench runs (no figures).
    (["stream_shape.py", "--smoke", "--one-engine", "--smollm-url", "{vllm}"], "sides named right", {"vllm"}),
    # the whole loop at a tiny size: reward models, votes over the WebSocket API, DPO, the gate (its adapter is
    # hot-loaded into the session's engine)
    (["loop_gain.py", "--smoke", "--vllm-url", "{vllm}"], "new model vs its parent:", {"vllm", "engine"}),
]
# bench/load.py --smoke runs in tests/test_load_bench.py; bench/arena_rank_fixture.py needs arena-rank
# (jax), kept out of the test environment: it only records a fixture the rating tests read.


def _needs(parts: set[str]) -> None:
    if "shared" in parts:
        shared_data_dir()
    if "engine" in parts:
        from django.conf import settings

        model = Path(settings.ARENA_MODELS_DIR) / "smollm2-135m-instruct" / "config.json"
        if not Path(settings.ARENA_ENGINE_PYTHON).exists() or not model.exists():
            missing_part(f"engine python {settings.ARENA_ENGINE_PYTHON} or model {model} missing: run `make models`")


@pytest.mark.parametrize(("args", "expect", "parts"), BENCHES, ids=[b[0][0] for b in BENCHES])
def test_the_benchmark_runs_at_its_smoke_size(args, expect, parts, request):
    _needs(parts)
    if "vllm" in parts:
        url = request.getfixturevalue("vllm_url")
        args = [a.replace("{vllm}", url) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, str(REPO / "bench" / args[0]), *args[1:]], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert expect in result.stdout, result.stdout[-3000:]
