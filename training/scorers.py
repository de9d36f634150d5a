"""Reward models at work: score text pairs with a scorer checkpoint.

The web and Celery processes never import torch: ``scorer_score_pairs`` writes a request file
and runs ``training.recipes.scoring`` in the engine environment, which prints the scores.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from training.errors import TrainingError
from training.models import Checkpoint

MAX_PAIR_CHARS = 20_000


def scorer_score_pairs(checkpoint: Checkpoint, items: list[dict], *, timeout_s: float | None = None) -> list[tuple[float, float]]:
    """``items``: ``{"prompt": str | messages, "a": str, "b": str}`` each; returns (score of a, score of b)
    per item, higher is better. Raises TrainingError when the checkpoint is no scorer or scoring fails."""
    if checkpoint.kind != Checkpoint.Kind.SCORER:
        raise TrainingError(f"{checkpoint} is not a reward model.")
    if not checkpoint.base_model.endpoint.model_dir:
        raise TrainingError(f"{checkpoint.base_model} has no weights directory on this server.")
    clean = []
    for i, item in enumerate(items):
        prompt = item.get("prompt")
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not prompt or not all(isinstance(item.get(k), str) for k in ("a", "b")):
            raise TrainingError(f"Item {i + 1} needs a prompt and two texts a and b.")
        if sum(len(m.get("content", "")) for m in prompt) + len(item["a"]) + len(item["b"]) > MAX_PAIR_CHARS:
            raise TrainingError(f"Item {i + 1} is longer than {MAX_PAIR_CHARS} characters.")
        clean.append({"prompt": prompt, "a": item["a"], "b": item["b"]})
    request = {"base_model_path": checkpoint.base_model.endpoint.model_dir, "adapter_path": checkpoint.weights_dir,
               "max_length": int(checkpoint.job.config.get("max_length") or 1024), "items": clean,
               "device": settings.ARENA_TRAINING_DEVICE or "cpu", "num_threads": 1}
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=_tmp_dir(), delete=False) as fh:
        json.dump(request, fh)
    try:
        result = subprocess.run([settings.ARENA_ENGINE_PYTHON, "-m", "training.recipes.scoring", fh.name],
                                cwd=settings.BASE_DIR, capture_output=True, text=True,
                                timeout=timeout_s or settings.ARENA_TRAINING_SCORE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TrainingError("Scoring timed out.") from None
    finally:
        Path(fh.name).unlink(missing_ok=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise TrainingError(f"Scoring failed: {lines[-1] if lines else 'no output'}")
    scores = json.loads(result.stdout.strip().splitlines()[-1])["scores"]
    return [(float(a), float(b)) for a, b in scores]


def _tmp_dir() -> Path:
    path = settings.ARENA_DATA_DIR / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of an accuracy measured on ``n`` pairs: whether a
    reward model is above chance (0.5) is whether the whole interval is."""
    if n <= 0:
        return 0.0, 1.0
    denominator = 1 + z * z / n
    centre = (accuracy + z * z / (2 * n)) / denominator
    half = z * (accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) ** 0.5 / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_text(accuracy: float, n: int) -> str:
    """``"59.5% of 300 held-out pairs (95% interval 53.9%–64.9%: above chance)"``."""
    low, high = accuracy_interval(accuracy, n)
    verdict = "above chance" if low > 0.5 else "below chance" if high < 0.5 else "not distinguishable from chance"
    return f"{accuracy:.1%} of {n} held-out pairs (95% interval {low:.1%}–{high:.1%}: {verdict}; chance is 50%)"
