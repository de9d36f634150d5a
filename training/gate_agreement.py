"""Is the gate right? Its verdicts compared with what people later decided about the same pairs.

Contract (read-only): for every finished gate run (``GateRun`` done, with a win rate and an
opponent) whose new model and opponent are both on the latest snapshot's overall board — so the
new model has human votes — the gate's verdict ("the new model is better": win rate above ½) is
compared with the people's (its rating above the opponent's). A win rate of exactly ½ or equal
ratings give no verdict and are left out. :func:`gate_agreement` returns, per judge (kind and
name: the reward model, each LLM judge), how many such pairs there are, how many agree, and the
agreement rate with its 95% Wilson interval (Arena-Hard-Auto reports its judges' agreement with
human rankings the same way). Nothing here changes a run or a board.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arena.leaderboard.selectors import UnknownCategory, board_get, snapshot_latest
from training.models import GateRun
from training.scorers import accuracy_interval

__all__ = ["JudgeAgreement", "gate_agreement"]


@dataclass
class JudgeAgreement:
    """One judge's record against people: ``pairs`` ([new, opponent, gate says new is better,
    people say new is better]), ``agree``/``n`` and the 95% Wilson interval of the rate."""

    judge_kind: str
    judge_name: str
    pairs: list[tuple[str, str, bool, bool]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def agree(self) -> int:
        return sum(1 for _, _, gate, people in self.pairs if gate == people)

    @property
    def rate(self) -> float:
        return self.agree / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return accuracy_interval(self.rate, self.n)


def _ratings() -> dict[str, float]:
    snapshot = snapshot_latest()
    if snapshot is None:
        return {}
    try:
        rows = (board_get(snapshot.data, "overall")["board"] or {}).get("rows") or []
    except (UnknownCategory, KeyError, TypeError):
        return {}
    return {row["model"]: float(row["rating"]) for row in rows}


def gate_agreement() -> list[JudgeAgreement]:
    """Per judge (reward model first, then LLM judges, by name), the gate's agreement with people."""
    rating = _ratings()
    judges: dict[tuple[str, str], JudgeAgreement] = {}
    runs = (GateRun.objects.filter(status=GateRun.Status.DONE, win_rate__isnull=False, opponent__isnull=False)
            .select_related("opponent", "checkpoint__served_model").order_by("created_at", "pk"))
    for run in runs:
        new = run.checkpoint.served_model
        if new is None or run.win_rate == 0.5:
            continue
        a, b = new.public_name, run.opponent.public_name
        if a not in rating or b not in rating or rating[a] == rating[b]:
            continue
        judge = judges.setdefault((run.judge_kind, run.judge_name), JudgeAgreement(run.judge_kind, run.judge_name))
        judge.pairs.append((a, b, run.win_rate > 0.5, rating[a] > rating[b]))
    return sorted(judges.values(), key=lambda j: (j.judge_kind != GateRun.Judge.REWARD, j.judge_name))
