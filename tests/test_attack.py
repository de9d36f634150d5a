"""The vote-rigging attack (Min et al., ICML 2025) against a running arena, protections on and off.

A real daphne server (the ``asgi_server`` fixture) behind a simulated reverse proxy
(``ARENA_TRUSTED_PROXIES=1``; each client sends the ``X-Forwarded-For`` its proxy would add)
serves three contestants on the real vLLM CPU server. Ten honest raters, each from its own
address, play three battles each, read the answers for a few seconds and vote by a seeded coin
(they cannot tell the models apart). One attacker from one address plays 48 battles in four parallel loops, reconnecting
without a cookie for each, recognises the target by its style (its answers are cut at one
token) and votes for it at once. The target's rating on the board of counted votes is compared
with its rating on the honest votes alone, with the 95% bootstrap interval of the latter:

* protections on (the documented defaults): the target moves by less than half its interval;
* protections off (every limit and check at 0): it moves by more than half its interval.
"""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest
import websockets

from arena import ratings
from arena.models import Vote
from serving.models import ServedModel
from tests.factories import make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.vllm]

PROTECTIONS = ["ARENA_LIMIT_BATTLES_PER_MINUTE", "ARENA_LIMIT_CONCURRENT_GENERATIONS", "ARENA_LIMIT_VOTES_PER_HOUR",
               "ARENA_LIMIT_VOTES_PER_DAY", "ARENA_MIN_VOTE_SECONDS", "ARENA_PROMPT_REPEAT_CAP", "ARENA_OUTLIER_Z"]
HONEST_RATERS, HONEST_BATTLES, ATTACK_BATTLES, ATTACK_WORKERS = 10, 3, 48, 4
PROMPT = "Write a long story about a cat."


@pytest.fixture
def contestants(transactional_db, vllm_url):
    for name, max_tokens in (("target", 1), ("rival-1", 5), ("rival-2", 5)):
        # One engine model under three names: the unique (endpoint, engine id) pair needs three endpoints.
        ServedModel.objects.create(public_name=name, endpoint=make_endpoint(base_url=f"{vllm_url}/v1", healthy=True),
                                   engine_model_id="smollm2-135m-instruct",
                                   generation={"temperature": 0.8, "max_tokens": max_tokens})


@pytest.fixture(params=["on", "off"])
def arena(request, monkeypatch, contestants):
    """The running arena with the protections at their defaults ("on") or all off."""
    monkeypatch.setenv("ARENA_TRUSTED_PROXIES", "1")
    for name in PROTECTIONS:
        if request.param == "on":
            monkeypatch.delenv(name, raising=False)  # the documented defaults
        else:
            monkeypatch.setenv(name, "0")
    return request.param, request.getfixturevalue("asgi_server").replace("http://", "ws://") + "/ws/arena/"


async def vote(url: str, address: str, prompt: str, choose, wait_s: float) -> tuple[str | None, str]:
    """Play a battle and vote ``choose(texts)`` (None: skip) after ``wait_s``; returns (battle id, outcome)."""
    async with websockets.connect(url, additional_headers={"X-Forwarded-For": address}) as ws:
        await ws.send(json.dumps({"type": "new_battle"}))
        frame = json.loads(await ws.recv())
        if frame["type"] == "error":
            return None, frame["code"]
        battle_id, texts = frame["battle_id"], {"a": "", "b": ""}
        await ws.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": prompt}))
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 120)))["type"] != "turn_done":
            if frame["type"] == "delta":
                texts[frame["side"]] += frame["text"]
            elif frame["type"] == "error":
                return None, frame["code"]
        winner = choose(texts)
        if winner is None:
            return battle_id, "skipped"
        await asyncio.sleep(wait_s)
        await ws.send(json.dumps({"type": "vote", "battle_id": battle_id, "winner": winner}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return battle_id, "voted" if frame["type"] == "revealed" else frame["code"]


def spot_target(texts: dict) -> str | None:
    """The attacker's classifier: the target's answers are much shorter than everyone else's."""
    short, long_ = sorted(texts, key=lambda side: len(texts[side]))
    if len(texts[short]) < 0.6 * len(texts[long_]):
        return f"model_{short}"
    return None


async def honest_rater(url: str, n: int) -> list[str]:
    rng = random.Random(n)
    battles = []
    for k in range(HONEST_BATTLES):
        def choose(texts, rng=rng):
            return rng.choices(["model_a", "model_b", "tie"], [0.45, 0.45, 0.1])[0]

        battle_id, outcome = await vote(url, f"198.51.100.{n + 1}", f"{PROMPT} Number {n}-{k}.", choose, 3.2)
        assert outcome == "voted", outcome
        battles.append(battle_id)
    return battles


async def attacker(url: str) -> list[str]:
    """A few parallel loops from one address, a fresh cookie-less connection per battle."""
    async def loop() -> list[str]:
        return [(await vote(url, "203.0.113.66", PROMPT, spot_target, 0.0))[1]
                for _ in range(ATTACK_BATTLES // ATTACK_WORKERS)]

    return [outcome for outcomes in await asyncio.gather(*(loop() for _ in range(ATTACK_WORKERS))) for outcome in outcomes]


async def campaign(url: str) -> tuple[set[str], list[str]]:
    results = await asyncio.gather(attacker(url), *(honest_rater(url, n) for n in range(HONEST_RATERS)))
    return {b for battles in results[1:] for b in battles}, results[0]


def board(votes) -> ratings.Board:
    rows = list(votes.values_list("battle__model_a__public_name", "battle__model_b__public_name", "winner"))
    names = sorted({r[0] for r in rows} | {r[1] for r in rows})
    a = np.array([names.index(r[0]) for r in rows])
    b = np.array([names.index(r[1]) for r in rows])
    outcome = np.array([ratings.WINNERS.index(r[2]) for r in rows])
    return ratings.compute_board(ratings.PairCounts.from_arrays(names, a, b, outcome), rounds=200, seed=0)


def target_shift(honest_ids: set[str]) -> tuple[float, float]:
    """(rating on every counted vote − rating on the honest votes alone, width of the latter's 95% CI)."""
    counted = Vote.objects.counted()
    everyone, honest = board(counted), board(counted.filter(battle__public_id__in=honest_ids))
    i, j = everyone.models.index("target"), honest.models.index("target")
    return float(everyone.rating[i] - honest.rating[j]), float(honest.ci_high[j] - honest.ci_low[j])


def test_the_rigging_attack_moves_the_target_only_without_protections(arena, capsys):
    mode, url = arena
    honest_ids, attack = asyncio.run(campaign(url))
    shift, width = target_shift(honest_ids)
    half = width / 2
    attack_counted = Vote.objects.counted().exclude(battle__public_id__in=honest_ids).count()
    with capsys.disabled():
        print(f"\nattack, protections {mode}: target shift {shift:+.1f} points, honest 95% CI width {width:.1f} "
              f"(half {half:.1f}); attacker outcomes {dict((o, attack.count(o)) for o in set(attack))}, "
              f"attacker votes counted {attack_counted}, honest votes {len(honest_ids)}")
    if mode == "on":
        assert attack.count("rate_limited") > 0 and attack_counted == 0
        assert abs(shift) < half
    else:
        assert attack.count("voted") > 10
        assert shift > half
