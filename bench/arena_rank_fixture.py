"""Record LMArena's ``arena-rank`` ratings and intervals on the public 1.67M battles (a fixture writer).

Runs only where ``arena-rank`` (and so jax) is installed -- never in the project's environment:

    python3.11 -m venv /tmp/rankenv && /tmp/rankenv/bin/pip install arena-rank==0.1.1
    /tmp/rankenv/bin/python bench/arena_rank_fixture.py [OUT [PAIR_COUNTS_JSON]]

Reads ``../shared/data/arena_battles/lmsys_clean_battle_20240814_pair_counts.json`` (the
per-pair counts of the 1,670,250 battles behind the 2024-08-13 board), expands it to one row
per battle (model_a, model_b, winner), fits ``arena_rank.models.bradley_terry.BradleyTerry``
with ``ci_method="sandwich"`` (default significance 0.05), once as given and once with
``PairDataset.from_pandas(reweighted=True, min_pair_count=50)``, and writes
``{"source", "arena_rank_version", "command", "runs": {"plain"|"reweighted":
{"models", "rating", "lower", "upper", "seconds"}}}`` to OUT (default
``arena/tests/data/arena_rank_lmsys_20240814.json``). Ratings are on arena-rank's own scale
(mean 1000, no anchor). ``arena/tests/test_ratings_robust.py`` compares ours with it.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from arena_rank.models.bradley_terry import BradleyTerry
from arena_rank.utils.data_utils import PairDataset

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "arena_battles" / "lmsys_clean_battle_20240814_pair_counts.json"
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def battles_frame(source: Path) -> pd.DataFrame:
    data = json.loads(source.read_text())
    models = np.array(data["models"], dtype=object)
    x = np.repeat(np.asarray(data["X"]), 4, axis=0)
    outcome = np.tile(np.arange(4), len(data["X"]))
    n = np.asarray(data["Y"], dtype=np.int64).ravel()
    return pd.DataFrame({
        "model_a": np.repeat(models[x[:, 0]], n),
        "model_b": np.repeat(models[x[:, 1]], n),
        "winner": np.repeat(np.array(WINNERS, dtype=object)[outcome], n),
    })


def run(frame: pd.DataFrame, reweighted: bool) -> dict:
    started = time.perf_counter()
    dataset = PairDataset.from_pandas(frame, reweighted=reweighted, min_pair_count=50)
    model = BradleyTerry(n_competitors=dataset.n_competitors)
    out = model.compute_ratings_and_cis(dataset, ci_method="sandwich")
    return {
        "models": list(out["competitors"]),
        "rating": np.asarray(out["ratings"]).tolist(),
        "lower": np.asarray(out["rating_lower"]).tolist(),
        "upper": np.asarray(out["rating_upper"]).tolist(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "arena" / "tests" / "data" / "arena_rank_lmsys_20240814.json"
    frame = battles_frame(Path(sys.argv[2]) if len(sys.argv) > 2 else SOURCE)
    result = {
        "source": SOURCE.name,
        "battles": len(frame),
        "arena_rank_version": version("arena-rank"),
        "command": "python bench/arena_rank_fixture.py (with arena-rank installed)",
        "runs": {"plain": run(frame, False), "reweighted": run(frame, True)},
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}: {len(result['runs']['plain']['models'])} models, "
          f"{result['runs']['plain']['seconds']} s / {result['runs']['reweighted']['seconds']} s")


if __name__ == "__main__":
    main()
