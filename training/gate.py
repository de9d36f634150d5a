"""The gate before the arena: an automatic pairwise evaluation of a new contestant against its
parent (``gate_run`` takes any other opponent, e.g. the arena's leader) on held-out arena prompts, before human votes are
spent on it.

* Prompts: the last ``ARENA_GATE_HELDOUT_PROMPTS`` arena-hard questions, which no prompt
  dataset built from the arena ever holds (``held_out_prompts``); a run asks the first
  ``ARENA_GATE_PROMPTS`` of them.
* Answers: both models answer through their serving endpoints (``serving.streaming``); a new
  model whose managed engine is still starting (a full fine-tune) is waited for, up to
  ``ARENA_ENGINE_START_TIMEOUT_S``, and the run fails saying so if it never answers.
* Judge (``ARENA_GATE_JUDGE``): ``reward`` -- the newest reward model (a scorer checkpoint) of
  the same base scores each answer on its own, so the order cannot matter; ``llm`` -- the served
  model named by ``ARENA_GATE_LLM_JUDGE`` (any registered OpenAI-compatible endpoint) judges
  in the Arena-Hard-Auto style, twice per prompt with the answers swapped to cancel position
  bias; ``auto`` -- reward when a scorer exists, else llm when one is named, else no gate.
* Result (``GateRun``): per-prompt verdicts, wins/ties/losses, the win rate (a tie is half a win)
  and its 95% bootstrap interval. Below ``ARENA_GATE_MIN_WIN_RATE`` the contestant waits for
  an admin (entered with sampling weight 0) when ``ARENA_GATE_HOLD`` is on; otherwise it
  battles as usual. A tiny local judge is a smoke test of the mechanism, not a verdict.
* Against the leader (``ARENA_GATE_VS_LEADER``, off by default): after the parent comparison a
  second run (role ``leader``) compares the new model with the top model of the latest ratings
  snapshot's overall board (``leader_for``), when that model is neither the new one nor its parent
  and is battle-ready; otherwise a skipped run says why. It is informational only: the parent run
  alone admits or holds the contestant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time

from django.conf import settings

from arena.leaderboard.selectors import UnknownCategory, board_get, snapshot_latest
from arena.pairing.contestants import contestant_admit, contestants_battle_ready
from arena.selectors import arena_prompts
from serving.models import Endpoint, ServedModel
from serving.streaming import ModelTarget, stream_chat
from training.models import Checkpoint, GateRun
from training.scorers import scorer_score_pairs

GATE_TASK = "training.tasks.gate_run"
BOOTSTRAP_ROUNDS = 1000
SCORER_SKIP = "a reward model scores answers and never battles: there is no contestant to gate"

# Arena-Hard-Auto's judge instructions (lmarena/arena-hard-auto, judge_config), shortened.
JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your "
    "job is to evaluate which assistant's answer is better. Consider whether each answer is helpful, relevant, "
    "concise and correct. Avoid any position biases and do not let the length of the responses influence your "
    "evaluation. After providing your explanation, you must output only one of the following choices as your "
    "final verdict with a label:\n\n1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A is slightly "
    "better: [[A>B]]\n3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: [[B>A]]\n"
    "5. Assistant B is significantly better: [[B>>A]]\n\nExample output: \"My final verdict is tie: [[A=B]]\"."
)
JUDGE_USER = ("<|User Prompt|>\n{prompt}\n\n<|The Start of Assistant A's Answer|>\n{a}\n<|The End of Assistant A's "
              "Answer|>\n\n<|The Start of Assistant B's Answer|>\n{b}\n<|The End of Assistant B's Answer|>")
_VERDICT = re.compile(r"\[\[(A>>B|A>B|A=B|B>A|B>>A)\]\]")
# the score of answer A for each verdict
_A_SCORE = {"A>>B": 1.0, "A>B": 1.0, "A=B": 0.5, "B>A": 0.0, "B>>A": 0.0}


# ---------------------------------------------------------------------- pure parts


def parse_verdict(text: str) -> str | None:
    """The last ``[[X]]`` label of a judgement, or None when the judge gave none."""
    found = _VERDICT.findall(text or "")
    return found[-1] if found else None


def prompt_score(games: list[dict]) -> float | None:
    """The new model's score on one prompt (1 win, 0.5 tie, 0 loss), averaged over the games that
    gave a verdict; ``games``: ``{"new_is": "A"|"B", "verdict": label | None}``."""
    scores = []
    for game in games:
        if game.get("verdict"):
            a = _A_SCORE[game["verdict"]]
            scores.append(a if game["new_is"] == "A" else 1.0 - a)
    return sum(scores) / len(scores) if scores else None


def win_rate_interval(scores: list[float], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0,
                      level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """(win rate, low, high): the mean per-prompt score and its percentile bootstrap interval."""
    if not scores:
        return None, None, None
    rng = random.Random(seed)
    n = len(scores)
    means = sorted(sum(rng.choice(scores) for _ in range(n)) / n for _ in range(rounds))
    tail = (1 - level) / 2
    return sum(scores) / n, means[int(tail * rounds)], means[min(rounds - 1, int((1 - tail) * rounds))]


# ---------------------------------------------------------------------- prompts, answers, judges


def held_out_prompts() -> list[str]:
    return arena_prompts("arena-hard")[-settings.ARENA_GATE_HELDOUT_PROMPTS:]


async def _answer(model_target: ModelTarget, messages: list[dict]) -> str:
    parts = [event.text async for event in stream_chat(model_target, messages)]
    return "".join(parts).strip()


def _answers(models: list[ServedModel], prompts: list[str], max_tokens: int) -> list[list[str]]:
    """answers[m][p]: model m's answer to prompt p, all asked at once (the engines batch them)."""
    targets = [ModelTarget.of(m, max_tokens=max_tokens) for m in models]

    async def everything():
        return await asyncio.gather(*(asyncio.gather(*(_answer(t, [{"role": "user", "content": p}])
                                                         for p in prompts)) for t in targets))

    return [list(a) for a in asyncio.run(everything())]


def _judge_llm(judge: ServedModel, prompts: list[str], new: list[str], old: list[str]) -> list[list[dict]]:
    target = ModelTarget.of(judge, max_tokens=settings.ARENA_GATE_JUDGE_MAX_TOKENS)
    # The judge's endpoint terms (provider rules, retries, extra fields) stay; only the temperature changes.
    target = dataclasses.replace(target, params={**target.params, "temperature": 0.0})

    def messages(prompt, a, b):
        return [{"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_USER.format(prompt=prompt, a=a, b=b)}]

    async def everything():
        first = [_answer(target, messages(p, n, o)) for p, n, o in zip(prompts, new, old, strict=True)]
        swapped = [_answer(target, messages(p, o, n)) for p, n, o in zip(prompts, new, old, strict=True)]
        return await asyncio.gather(asyncio.gather(*first), asyncio.gather(*swapped))

    first, swapped = asyncio.run(everything())
    return [[{"new_is": "A", "verdict": parse_verdict(f), "judgement": f[-600:]},
             {"new_is": "B", "verdict": parse_verdict(s), "judgement": s[-600:]}]
            for f, s in zip(first, swapped, strict=True)]


def _judge_reward(scorer: Checkpoint, prompts: list[str], new: list[str], old: list[str]) -> list[list[dict]]:
    scores = scorer_score_pairs(scorer, [{"prompt": p, "a": n, "b": o} for p, n, o in zip(prompts, new, old,
                                                                                          strict=True)])
    # a reward model scores each answer alone: one game per prompt, the order cannot matter
    return [[{"new_is": "A", "verdict": "A>B" if a > b else "B>A" if b > a else "A=B", "scores": [a, b]}]
            for a, b in scores]


def gate_judge(base_model: ServedModel) -> tuple[str, Checkpoint | ServedModel | None]:
    """(judge kind, the scorer checkpoint or judge model), or ("", None) when no gate runs."""
    mode = settings.ARENA_GATE_JUDGE
    if mode in ("reward", "auto"):
        scorer = (Checkpoint.objects.filter(kind=Checkpoint.Kind.SCORER, base_model=base_model)
                  .select_related("base_model__endpoint", "job").order_by("-created_at").first())
        if scorer is not None or mode == "reward":
            return GateRun.Judge.REWARD, scorer
    if mode in ("llm", "auto") and settings.ARENA_GATE_LLM_JUDGE:
        return GateRun.Judge.LLM, ServedModel.objects.filter(public_name=settings.ARENA_GATE_LLM_JUDGE).first()
    return "", None


# ---------------------------------------------------------------------- the run


def gate_run(checkpoint: Checkpoint, *, opponent: ServedModel | None = None, role: str = "parent",
             judge_kind: str | None = None, judge=None, num_prompts: int | None = None) -> GateRun:
    """Evaluate ``checkpoint``'s contestant against ``opponent`` (default: its parent model) and
    record the result; then admit or hold the contestant by the threshold. Never raises for a
    failing model or judge: the run is recorded as failed, with the reason."""
    new = checkpoint.served_model
    opponent = opponent or (new.parent if new else None)
    if judge_kind is None:
        judge_kind, judge = gate_judge(checkpoint.base_model)
    run = GateRun.objects.create(checkpoint=checkpoint, opponent=opponent, opponent_role=role, judge_kind=judge_kind,
                                 judge_name=str(judge or ""))
    t0 = time.monotonic()
    problem = ("the checkpoint has no contestant" if new is None else "no opponent to compare with"
               if opponent is None else "no judge: train a reward model or set ARENA_GATE_LLM_JUDGE"
               if judge is None else "")
    if problem:
        GateRun.objects.filter(pk=run.pk).update(status=GateRun.Status.SKIPPED, error=problem)
        run.refresh_from_db()
        return run
    prompts = held_out_prompts()[: num_prompts or settings.ARENA_GATE_PROMPTS]
    try:
        _wait_for_engine(new)
        new_answers, old_answers = _answers([new, opponent], prompts, settings.ARENA_GATE_MAX_TOKENS)
        judged = (_judge_reward if judge_kind == GateRun.Judge.REWARD else _judge_llm)(
            judge, prompts, new_answers, old_answers)
    except Exception as exc:  # noqa: BLE001 - an engine or judge failure is the run's result
        GateRun.objects.filter(pk=run.pk).update(status=GateRun.Status.FAILED, wall_s=time.monotonic() - t0,
                                                 num_prompts=len(prompts), error=f"{type(exc).__name__}: {exc}"[:2000])
        run.refresh_from_db()
        return run
    verdicts = [{"prompt": p, "new": n, "old": o, "games": g, "score": prompt_score(g)}
                for p, n, o, g in zip(prompts, new_answers, old_answers, judged, strict=True)]
    scores = [v["score"] for v in verdicts if v["score"] is not None]
    rate, low, high = win_rate_interval(scores)
    passed = None if rate is None else rate >= settings.ARENA_GATE_MIN_WIN_RATE
    GateRun.objects.filter(pk=run.pk).update(
        status=GateRun.Status.DONE, verdicts=verdicts, num_prompts=len(prompts), win_rate=rate, ci_low=low,
        ci_high=high, passed=passed, wall_s=round(time.monotonic() - t0, 2),
        wins=sum(s > 0.5 for s in scores), ties=sum(s == 0.5 for s in scores), losses=sum(s < 0.5 for s in scores))
    run.refresh_from_db()
    if role == "parent":
        _admit_or_hold(new, passed)
    return run


class EngineNotReady(Exception):
    pass


def _wait_for_engine(model: ServedModel, poll_s: float = 2.0) -> None:
    """A model on a managed endpoint that is not healthy yet (a full fine-tune's engine starting) is
    waited for, up to ARENA_ENGINE_START_TIMEOUT_S; raises EngineNotReady when it never answers."""
    if not model.endpoint.managed or model.endpoint.healthy:
        return
    deadline = time.monotonic() + settings.ARENA_ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if Endpoint.objects.filter(pk=model.endpoint_id, healthy=True).exists():
            model.endpoint.refresh_from_db()
            return
        time.sleep(poll_s)
    error = Endpoint.objects.filter(pk=model.endpoint_id).values_list("last_error", flat=True).first() or ""
    raise EngineNotReady(f"the engine of {model.public_name} ({model.endpoint.name}) did not answer within "
                         f"{settings.ARENA_ENGINE_START_TIMEOUT_S:.0f} s (ARENA_ENGINE_START_TIMEOUT_S)"
                         + (f": {error.splitlines()[0]}" if error else ""))


def gate_holds() -> bool:
    """Whether a new contestant waits (sampling weight 0) until the gate admits it."""
    return settings.ARENA_GATE_HOLD and settings.ARENA_GATE_JUDGE != "off"


def _admit_or_hold(model: ServedModel, passed: bool | None) -> None:
    if passed or not gate_holds():
        contestant_admit(model)


def gate_after_registration(checkpoint: Checkpoint) -> None:
    """Queue the gate for a new contestant (training queue, after the job's own work is recorded);
    for a scorer, record at once a skipped run saying why none runs."""
    from celery import current_app
    from django.db import transaction

    if settings.ARENA_GATE_JUDGE == "off":
        return
    if checkpoint.kind == Checkpoint.Kind.SCORER:  # recorded at once, so the job page says why no gate ran
        GateRun.objects.create(checkpoint=checkpoint, opponent_role="", status=GateRun.Status.SKIPPED,
                               error=SCORER_SKIP)
        return
    if checkpoint.served_model_id is None:
        return
    transaction.on_commit(lambda: current_app.send_task(GATE_TASK, args=[checkpoint.pk]))


def gate_run_for(checkpoint_id: int) -> GateRun:
    """The task's work: the gate of a new contestant against its parent (the run returned), then,
    with ``ARENA_GATE_VS_LEADER``, the informational run against the leader."""
    checkpoint = Checkpoint.objects.select_related("served_model__parent__endpoint", "served_model__endpoint",
                                                   "base_model__endpoint").get(pk=checkpoint_id)
    run = gate_run(checkpoint)
    if settings.ARENA_GATE_VS_LEADER:
        gate_run_vs_leader(checkpoint)
    return run


# ---------------------------------------------------------------------- against the leader


def leader_for(checkpoint: Checkpoint) -> tuple[ServedModel | None, str]:
    """(the leader to compare the checkpoint's contestant with, "") or (None, why there is none):
    the first model, not retired, of the latest snapshot's overall board, if it is battle-ready
    and is neither the new model nor its parent."""
    new = checkpoint.served_model
    snapshot = snapshot_latest()
    if snapshot is None:
        return None, "no leaderboard yet (no ratings snapshot)"
    try:
        rows = (board_get(snapshot.data, "overall")["board"] or {}).get("rows") or []
    except (UnknownCategory, KeyError, TypeError):
        rows = []
    name = next((row["model"] for row in rows if not row.get("retired")), None)
    if name is None:
        return None, "the leaderboard has no ranked model yet"
    leader = ServedModel.objects.filter(public_name=name).select_related("endpoint").first()
    if leader is None:
        return None, f"the leader {name} is no longer a served model"
    if new is not None and leader.pk == new.pk:
        return None, f"the new model {name} is the leader"
    if new is not None and leader.pk == new.parent_id:
        return None, f"the leader {name} is the parent: the parent comparison covers it"
    if leader.pk not in {model.pk for model, _ in contestants_battle_ready()}:
        return None, f"the leader {name} is not battle-ready (unhealthy, retired or on hold)"
    return leader, ""


def gate_run_vs_leader(checkpoint: Checkpoint, *, judge_kind: str | None = None, judge=None,
                       num_prompts: int | None = None) -> GateRun:
    """A second, informational gate run against the arena's leader (role ``leader``): it never
    admits nor holds the contestant. Skipped, saying why, when ``leader_for`` finds none."""
    leader, why = leader_for(checkpoint)
    if leader is None:
        return GateRun.objects.create(checkpoint=checkpoint, opponent_role="leader", status=GateRun.Status.SKIPPED,
                                      error=why)
    return gate_run(checkpoint, opponent=leader, role="leader", judge_kind=judge_kind, judge=judge,
                    num_prompts=num_prompts)
