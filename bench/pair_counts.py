"""The LMSYS pair counts (``../shared/data/arena_battles/lmsys_clean_battle_20240814_pair_counts.json``)
expanded to a battle file, one JSON line per battle (FastChat's schema, no time stamps), for the
benchmarks that read battle files. No Django: a benchmark that times child processes may import it."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "arena_battles" / "lmsys_clean_battle_20240814_pair_counts.json"
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def write_battles(path: Path, source: Path = DATA, scale: float = 1.0) -> int:
    """The pair counts as one battle per line; ``scale`` < 1 keeps that share of each count (rounded up)."""
    data = json.loads(source.read_text())
    models, n = data["models"], 0
    with path.open("w") as fh:
        for (i, j), outcomes in zip(data["X"], data["Y"], strict=True):
            for winner, count in zip(WINNERS, outcomes, strict=True):
                count = int(count) if scale >= 1 else -(-int(count) * scale // 1)
                fh.write((json.dumps({"model_a": models[i], "model_b": models[j], "winner": winner}) + "\n") * int(count))
                n += int(count)
    return n
