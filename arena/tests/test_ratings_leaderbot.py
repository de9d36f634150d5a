"""leaderbot's Davidson model (arena.ratings.leaderbot) against scipy on the same likelihood."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from scipy.optimize import minimize

from arena.ratings import PairCounts
from arena.ratings.leaderbot import basis, fit_leaderbot, leaderbot_rows


def league() -> PairCounts:
    rng = np.random.default_rng(3)
    rows = []
    names = ["a", "b", "c", "d", "e"]
    for x in range(5):
        for y in range(x + 1, 5):
            for winner, n in zip(("model_a", "model_b", "tie", "tie (bothbad)"), rng.integers(5, 60, 4), strict=True):
                rows.append((names[x], names[y], winner, int(n)))
    return PairCounts.from_grouped(rows)


def scipy_objective(counts: PairCounts):
    """leaderbot's objective (mean negative log-likelihood plus its two gauge penalties), written out cell by cell."""
    n = counts.n_models
    phi = basis(n)
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    win, loss, tie = counts.counts[:, 0], counts.counts[:, 1], counts.counts[:, 2]

    def f(p: np.ndarray) -> float:
        x, s, g = p[:n], p[n : 2 * n], p[2 * n :]
        z = (x[i] - x[j]) / np.sqrt(s[i] ** 2 + s[j] ** 2)
        mu = g[i] * phi[j] + g[j] * phi[i]
        den = np.exp(z / 2) + np.exp(-z / 2) + np.exp(mu)
        ll = win * np.log(np.exp(z / 2) / den) + loss * np.log(np.exp(-z / 2) / den) + tie * np.log(np.exp(mu) / den)
        return -ll.sum() / (win + loss + tie).sum() + x.sum() ** 2 + ((1 - 1 / n) * (s @ s) - 1) ** 2

    return f


def test_the_fit_is_an_optimum_scipy_cannot_improve_and_drops_both_bad():
    counts = league()
    fit = fit_leaderbot(counts)
    f = scipy_objective(counts)
    n = counts.n_models
    mine = np.concatenate([fit.score, fit.scale, fit.tie])
    assert f(mine) == pytest.approx(fit.loss, abs=1e-12)  # the gauge holds exactly
    options = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20_000}
    polished = minimize(f, mine, method="L-BFGS-B", options=options)
    assert polished.fun > fit.loss - 1e-9
    cold = minimize(f, np.concatenate([np.zeros(n), np.full(n, 0.5), np.zeros(n)]), method="L-BFGS-B", options=options)
    assert fit.loss <= cold.fun + 1e-9
    rows = leaderbot_rows(fit, counts)
    both_bad = counts.counts[:, 3].sum()
    assert sum(r["battles"] for r in rows) == 2 * (counts.n_battles - both_bad)
    for row in rows:
        assert sum(row["predicted"]) == pytest.approx(1.0)
        assert row["predicted"][2] == pytest.approx(row["observed"][2], abs=0.05)


def test_the_command_refuses_another_tie_model_with_leaderbot(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"model_a": "x", "model_b": "y", "winner": "tie"}\n')
    with pytest.raises(CommandError, match="leaderbot's Davidson"):
        call_command("compute_ratings", str(path), "--leaderbot", "--ties", "half")
