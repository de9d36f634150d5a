"""How fragile the order is: for two models next to each other on the board, the smallest number
of votes whose removal would swap them (arXiv 2508.11847 found that dropping 0.003% of Chatbot
Arena's votes flipped its first place).

Method: a *linearised* (first-order influence) estimate, then a greedy choice. Removing one vote
of cell c (a model pair and an outcome) moves the fitted parameters by about ``H⁻¹ s_c``, where
``H`` is the Hessian of the penalised negative log-likelihood at the fit and ``s_c`` the gradient
of that vote's own negative log-likelihood (``(p − y)(e_i − e_j)`` for Bradley–Terry, ties
counting y = ½). The gap ``β_k − β_l`` between the two models therefore changes by
``(e_k − e_l)ᵀ H⁻¹ s_c`` per vote removed. The votes that narrow the gap most are taken first,
a whole cell at a time, until the predicted gap reaches zero: that count is the estimate. The
candidates are the votes involving either of the two models (others move the gap only through
the rest of the fit, far less per vote), which keeps the whole board's estimate cheap. It is
exact to first order; removing many votes moves the fit further than the linear model says, so
a refit on the remaining votes is the check (``arena/tests/test_ratings_fragility.py`` compares
it with the exhaustive minimum on small boards). ``None``: even removing every vote that helps
does not swap them to first order (or the two models are in different components).
"""

from __future__ import annotations

import math

import numpy as np

from arena.ratings.linalg import _solve_spd

#: Shown on the leaderboard next to the flip counts.
ABOUT_FRAGILITY = (
    "“Flips with N votes”: removing about N votes (the ones that favour the upper model most) "
    "would swap this model with the one below it. A first-order estimate from the fit's "
    "curvature, not a refit of every subset; small numbers mean the order between the two is "
    "not settled."
)


def flip_votes(
    gap: np.ndarray,
    pairs_k: np.ndarray,
    pairs_l: np.ndarray,
    hess: np.ndarray,
    cell_i: np.ndarray,
    cell_j: np.ndarray,
    cell_fx: np.ndarray,
    cell_count: np.ndarray,
    cell_ft: np.ndarray | None = None,
) -> list[int | None]:
    """Votes to remove to swap each model pair ``(pairs_k[m], pairs_l[m])`` whose gap
    ``β_k − β_l`` is ``gap[m]`` (logits, ≥ 0).

    ``hess``: the fit's Hessian (n×n, or (n+1)×(n+1) with a tie parameter last); the cells:
    pair ``(cell_i, cell_j)``, per-vote score in the difference ``β_i − β_j`` (``cell_fx``) and
    in the tie parameter (``cell_ft``), and how many votes the cell holds (``cell_count``).
    """
    m = len(hess)
    if len(gap) == 0:
        return []
    rhs = np.zeros((m, len(gap)))
    cols = np.arange(len(gap))
    rhs[pairs_k, cols] += 1.0
    rhs[pairs_l, cols] -= 1.0
    v = _solve_spd(hess, rhs)  # (m, pairs): H⁻¹ (e_k − e_l)
    # Candidates: the votes involving either model (a vote elsewhere moves the gap only through
    # the coupling of the fit, far less per vote); this keeps it ~2·n cells per neighbour pair.
    n = int(max(np.max(cell_i, initial=-1), np.max(cell_j, initial=-1), np.max(pairs_k), np.max(pairs_l))) + 1
    touching = [np.flatnonzero((cell_i == k) | (cell_j == k)) for k in range(n)] if len(cell_i) else []
    out: list[int | None] = []
    for col in range(len(gap)):
        if not touching:
            out.append(None)
            continue
        cells = np.union1d(touching[pairs_k[col]], touching[pairs_l[col]])
        vi, vj = v[cell_i[cells], col], v[cell_j[cells], col]
        effect = (vi - vj) * cell_fx[cells]
        if cell_ft is not None:
            effect += v[m - 1, col] * cell_ft[cells]
        out.append(_greedy(float(gap[col]), effect, cell_count[cells]))
    return out


_FEW = 64


def _greedy(gap: float, effect: np.ndarray, count: np.ndarray) -> int | None:
    """Fewest votes whose summed (negative) effects close ``gap``, whole cells first (most
    effective first, vectorised: a cumulative sum and one search)."""
    if gap <= 0:
        return 0
    helpful = np.flatnonzero((effect < 0) & (count > 0))
    if helpful.size == 0:
        return None
    if helpful.size > _FEW:
        # Usually a few of the strongest cells close the gap: sort only those, else everything.
        few = helpful[np.argpartition(effect[helpful], _FEW)[:_FEW]]
        few = few[np.argsort(effect[few])]
        if float(np.sum(count[few] * -effect[few])) >= gap:
            helpful = few
    order = helpful[np.argsort(effect[helpful], kind="stable")]
    per = -effect[order]
    closed = np.cumsum(count[order] * per)
    if closed[-1] < gap:
        return None
    last = int(np.searchsorted(closed, gap))  # the cell in which the gap closes
    before = float(closed[last - 1]) if last else 0.0
    votes_before = int(round(float(count[order[:last]].sum())))
    return votes_before + int(math.ceil((gap - before) / float(per[last]) - 1e-12))


def bt_cells(i: np.ndarray, j: np.ndarray, counts: np.ndarray, beta: np.ndarray,
             weight: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The (pair × outcome) cells of a Bradley–Terry fit with ties as half: ``(cell_i, cell_j,
    per-vote score in β_i − β_j, count)``; a vote's score is ``w·(p − y)`` with y = 1, 0, ½."""
    p = 1.0 / (1.0 + np.exp(-(beta[i] - beta[j])))
    w = np.ones(len(i)) if weight is None else weight
    cell_i = np.concatenate([i, i, i])
    cell_j = np.concatenate([j, j, j])
    fx = np.concatenate([w * (p - 1.0), w * p, w * (p - 0.5)])
    count = np.concatenate([counts[:, 0], counts[:, 1], counts[:, 2] + counts[:, 3]])
    return cell_i, cell_j, fx, count


def adjacent_flips(rating: np.ndarray, names: list[str], labels: np.ndarray, beta: np.ndarray, hess: np.ndarray,
                   cells: tuple[np.ndarray, ...]) -> list[int | None]:
    """Flip counts in board order (rating, best first; name breaks ties): entry k is the votes
    to remove to swap the k-th and (k+1)-th models, None for the last one, for neighbours in
    different components, or when no removal does it. ``cells`` as :func:`bt_cells` gives them
    (plus the tie-parameter score last for a tie model)."""
    n = len(rating)
    order = sorted(range(n), key=lambda k: (-rating[k], names[k]))
    ks, ls, slots = [], [], []
    for pos in range(n - 1):
        k, nxt = order[pos], order[pos + 1]
        if labels[k] == labels[nxt]:
            ks.append(k)
            ls.append(nxt)
            slots.append(pos)
    out: list[int | None] = [None] * n
    if ks:
        ka, la = np.array(ks), np.array(ls)
        cell_i, cell_j, fx, count, *ft = cells
        got = flip_votes(np.maximum(beta[ka] - beta[la], 0.0), ka, la, hess, cell_i, cell_j, fx, count,
                         ft[0] if ft else None)
        for pos, votes in zip(slots, got, strict=True):
            out[pos] = votes
    return out
