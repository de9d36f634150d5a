"""σ without scipy, checked against scipy's expit (tests may import scipy; arena.ratings does not)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy.special import expit

from arena.ratings.logistic import sigmoid


def test_sigmoid_matches_expit_over_the_whole_line() -> None:
    x = np.concatenate([np.linspace(-800, 800, 20_001), np.array([0.0, -0.0, 1e-300, -1e-300, 36.7, -36.7, 745.2, -745.2,
                                                                  np.inf, -np.inf])])
    ours, theirs = sigmoid(x), expit(x)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, theirs, rtol=4e-16, atol=1e-300)  # expit flushes subnormals to 0
    assert sigmoid(-np.inf) == 0.0 and sigmoid(np.inf) == 1.0 and sigmoid(0.0) == 0.5
    assert sigmoid(np.array([[1.0, -2.0]])).shape == (1, 2)


def test_the_rating_package_imports_no_scipy() -> None:
    code = "import sys, arena.ratings; print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
