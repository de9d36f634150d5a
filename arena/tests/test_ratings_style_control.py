"""Tests of style control in the pure rating maths: FastChat's style features and the joint fit (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arena import ratings
from arena.ratings import (
    PairCounts,
    fit_bt,
    fit_style_control,
    style_features,
)


def test_style_features_by_hand() -> None:
    a = np.array([[100, 2, 0, 1], [10, 0, 0, 0], [50, 1, 3, 0]])
    b = np.array([[50, 0, 0, 1], [30, 0, 0, 0], [50, 1, 1, 0]])
    feats, mean, std = style_features(a, b)
    raw = (a - b) / (a + b + 1)
    assert raw[0, 0] == pytest.approx(50 / 151)
    assert mean == pytest.approx(raw.mean(axis=0)) and std == pytest.approx(raw.std(axis=0))
    assert feats[:, :3] == pytest.approx((raw[:, :3] - mean[:3]) / std[:3])
    assert np.all(feats[:, 3] == 0)  # constant feature -> zeros, not NaN
    # A constant non-zero ratio (0.1 here) must not turn rounding noise into a feature.
    same = np.full((7, 1), 10)
    feats, _, std = style_features(same, same - 2)
    assert np.all(feats == 0) and std[0] == 0


def style_league(seed: int = 0, n: int = 4, battles: int = 3000, length_effect: float = 1.0):
    rng = np.random.default_rng(seed)
    strength = np.linspace(-0.5, 0.5, n)
    a = rng.integers(0, n, battles)
    b = (a + rng.integers(1, n, battles)) % n
    style_a = np.column_stack(
        [
            rng.integers(50, 500, battles),
            rng.integers(0, 4, battles),
            rng.integers(0, 8, battles),
            rng.integers(0, 5, battles),
        ]
    )
    style_b = np.column_stack(
        [
            rng.integers(50, 500, battles),
            rng.integers(0, 4, battles),
            rng.integers(0, 8, battles),
            rng.integers(0, 5, battles),
        ]
    )
    feats, _, _ = style_features(style_a, style_b)
    p = 1 / (1 + np.exp(-(strength[a] - strength[b] + length_effect * feats[:, 0])))
    outcome = np.where(rng.random(battles) < p, 0, 1)
    outcome[rng.random(battles) < 0.1] = 2
    return a, b, outcome, style_a, style_b, strength


def test_style_control_recovers_length_effect() -> None:
    a, b, outcome, sa, sb, strength = style_league()
    models = ["m0", "m1", "m2", "m3"]
    fit = fit_style_control(models, a, b, outcome, sa, sb, rounds=10)
    assert fit.feature_names == ("tokens", "headers", "lists", "bold")
    assert 0.6 < fit.coefficients[0] < 1.4  # true effect 1.0 per SD (ties damp it a little)
    assert np.all(np.abs(fit.coefficients[1:]) < 0.2)
    assert fit.coef_ci_low[0] < fit.coefficients[0] < fit.coef_ci_high[0]
    assert np.all(np.diff(fit.rating) > 0)  # true strengths increase with the index
    assert fit.rating.mean() == pytest.approx(1000.0)
    assert fit.n_rows <= len(a)


def test_style_control_without_style_differences_is_plain_bt() -> None:
    a, b, outcome, sa, _, _ = style_league(seed=2)
    models = ["m0", "m1", "m2", "m3"]
    fit = fit_style_control(models, a, b, outcome, sa, sa, anchor=("m1", 1100.0))
    assert fit.n_rows == 6  # all features zero: identical rows aggregate to one per pair
    counts = PairCounts.from_arrays(models, a, b, outcome)
    assert fit.rating == pytest.approx(fit_bt(counts, anchor=("m1", 1100.0)), abs=1e-6)
    assert np.all(fit.coefficients == 0)


def test_style_control_fit_is_the_optimum() -> None:
    from scipy.optimize import minimize

    a, b, outcome, sa, sb, _ = style_league(seed=5, battles=600)
    fit = fit_style_control(["m0", "m1", "m2", "m3"], a, b, outcome, sa, sb)
    # Rebuild the objective from scratch (row by row, no aggregation) and check that a generic
    # optimiser started at our solution finds nothing better.
    feats, _, _ = style_features(sa, sb)
    score = np.array([1.0, 0.0, 0.5, 0.5])[outcome]
    lam_beta = ratings.DEFAULT_REG / math.log(10) ** 2

    def objective(x: np.ndarray) -> float:
        z = x[a] - x[b] + feats @ x[4:]
        loss = score @ np.logaddexp(0, -z) + (1 - score) @ np.logaddexp(0, z)
        return float(loss + 0.5 * lam_beta * x[:4] @ x[:4] + 0.5 * ratings.DEFAULT_REG * x[4:] @ x[4:])

    beta = (fit.rating - 1000.0) / ratings.POINTS_PER_LOGIT
    x0 = np.concatenate([beta, fit.coefficients])
    best = minimize(objective, x0, method="BFGS", options={"gtol": 1e-10})
    assert objective(x0) <= best.fun + 1e-9
