"""An independent, straightforward Bradley–Terry CLI: the baseline of ``bench/cli_speed.py``.

    python bench/bt_cli.py FILE.jsonl

What someone would write without this project: the standard library's ``json`` per line, a
``Counter`` of ``(model_a, model_b, winner)``, then Bradley–Terry by maximum likelihood with a
tie (or "both bad") as half a win each, fitted with scipy's L-BFGS-B on the aggregated counts,
Elo scale (400·log10, centred at 1000). Prints ``[{"model", "rating"}, ...]`` sorted by rating.
It imports nothing from the project on purpose (it is the independent side of the comparison).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter

import numpy as np
from scipy.optimize import minimize


def main(path: str) -> None:
    counts: Counter = Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                battle = json.loads(line)
                counts[battle["model_a"], battle["model_b"], battle["winner"]] += 1
    models = sorted({m for a, b, _ in counts for m in (a, b)})
    index = {m: k for k, m in enumerate(models)}
    rows = list(counts.items())
    a = np.array([index[key[0]] for key, _ in rows])
    b = np.array([index[key[1]] for key, _ in rows])
    score = np.array([1.0 if key[2] == "model_a" else 0.0 if key[2] == "model_b" else 0.5 for key, _ in rows])
    n = np.array([c for _, c in rows], dtype=float)

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        x = beta[a] - beta[b]
        p = 1.0 / (1.0 + np.exp(-x))
        value = -np.sum(n * (score * np.log(p) + (1.0 - score) * np.log1p(-p))) + 1e-6 * beta @ beta
        g = n * (p - score)
        return value, np.bincount(a, g, len(models)) - np.bincount(b, g, len(models)) + 2e-6 * beta

    beta = minimize(loss, np.zeros(len(models)), jac=True, method="L-BFGS-B").x
    rating = 1000.0 + 400.0 / math.log(10.0) * (beta - beta.mean())
    order = np.argsort(-rating)
    print(json.dumps([{"model": models[k], "rating": round(float(rating[k]), 2)} for k in order]))


if __name__ == "__main__":
    main(sys.argv[1])
