"""A contestant's siblings: every checkpoint launched from the same parent, dataset and method.

Why: an admin can train many variants and let only the best meet raters (the selection the
"Leaderboard Illusion" paper, arXiv 2504.20879, criticises). The public model page therefore shows
how many runs of the same recipe there were and what the gate said of each, the held-back ones
included. A sibling's *name* (and a link to its page) shows only where the arena's naming rule
allows it (``arena.model_card.is_public``); a hidden sibling appears as "an unnamed run" with
its gate verdict and state, so its existence and result are public, its identity and page are
not.

:func:`model_siblings` is registered with ``arena.model_card.SIBLING_PROVIDERS`` by
``training.apps`` (the arena never imports training).
"""

from __future__ import annotations

from collections.abc import Callable

from arena.models import Contestant
from serving.models import ServedModel
from training.models import Checkpoint


def _gate(checkpoint: Checkpoint) -> dict:
    """The admitting gate run's verdict in plain values (the informational leader run is not it)."""
    runs = [r for r in checkpoint.gate_runs.all() if r.opponent_role != "leader"]
    run = max(runs, key=lambda r: (r.created_at, r.pk)) if runs else None
    if run is None:
        return {"verdict": "no gate run"}
    if run.status != run.Status.DONE or run.win_rate is None:
        return {"verdict": run.get_status_display().lower()}
    return {"verdict": "passed" if run.passed else "failed", "win_rate": run.win_rate, "ci_low": run.ci_low,
            "ci_high": run.ci_high, "prompts": run.num_prompts}


def _state(model: ServedModel | None) -> str:
    if model is None:
        return "never served"
    contestant = Contestant.objects.filter(served_model=model).first()
    if contestant is not None and contestant.retired_at is not None:
        return "retired"
    if contestant is not None and contestant.sampling_weight == 0:
        return "held back by the gate"
    return "in the arena" if model.active else "paused"


def model_siblings(model: ServedModel, is_public: Callable[[ServedModel], bool]) -> dict | None:
    """``{"rows": [...], "total", "held_back", "hidden"}`` for the model's recipe, or None when the
    model is no checkpoint. Each row: ``name`` (None when hidden), ``is_self``, ``state``, ``gate``."""
    mine = Checkpoint.objects.filter(served_model=model).select_related("job").first()
    if mine is None:
        return None
    family = (Checkpoint.objects.filter(kind=mine.kind, base_model_id=mine.base_model_id, parent_id=mine.parent_id,
                                        job__dataset_id=mine.job.dataset_id, job__method=mine.job.method)
              .select_related("served_model").prefetch_related("gate_runs").order_by("job_id"))
    rows = []
    for checkpoint in family:
        served = checkpoint.served_model
        own = checkpoint.pk == mine.pk
        public = own or (served is not None and is_public(served))
        rows.append({"name": served.public_name if public and served else None, "is_self": own,
                     "state": _state(served), "gate": _gate(checkpoint)})
    return {"rows": rows, "total": len(rows), "held_back": sum(r["state"] == "held back by the gate" for r in rows),
            "hidden": sum(r["name"] is None for r in rows)}
