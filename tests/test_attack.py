"""The vote-rigging attack (Min et al., ICML 2025) played by a patient, adaptive attacker against a
running arena, protections on (the documented defaults) and off.

A real daphne server (the ``asgi_server`` fixture) behind a simulated reverse proxy
(``ARENA_TRUSTED_PROXIES=1``; each client sends the ``X-Forwarded-For`` its proxy would add)
serves three contestants on the real vLLM CPU server. The target is a new model (drawn more
often for its first votes, ``ARENA_NEW_MODEL_BOOST``, so it is in most battles); its answers
are cut short (``max_tokens`` 3 against 24), so honest readers, who prefer the fuller answer
7 times in 10, make it the weakest model. ``ARENA_MIN_VOTE_SECONDS`` is 1 s here (3 by default) to keep the
test short; everyone waits past it.

* Honest raters: 8, each from its own IPv4 address, 4 battles each, a fresh prompt each time;
  they read for 1.2 s, then prefer the longer answer (70%), the shorter (20%) or call a tie (10%).
* The attacker recognises the target by the text (the shorter answer, when it is much
  shorter; it never looks at frame counts or timing, which pacing hides), votes for it, and
  in battles without it votes like the crowd (for the longer answer) so its record looks
  ordinary. It waits 1.5 s after the answers (never 0 s), sends a new prompt every time,
  reconnects without a cookie for every battle (a new rater id each time), takes a new address
  inside one IPv6 /64 for every connection, plays two sockets in parallel, and paces itself
  under every limit (at most ``ARENA_LIMIT_BATTLES_PER_MINUTE`` battle starts in any minute for
  the whole key, two generations at once, far under the vote limits).

Before the boards are read, ``arena.quality.rules.outliers_refresh`` runs as the refit would. The
target's rating on the board of counted votes is compared with its rating on the honest votes
alone, with the 95% bootstrap interval of the latter:

* protections on: the /64 is one key, whose 26 votes the leave-one-key-out test flags; the
  target moves by less than half its interval;
* protections off: nothing paces the attacker, so it plays twice as many battles (52) in less
  time; no protection leaves any of its votes out (only a fact of a battle can: an answer that
  names a model, a failed or empty side), and the target moves up by more than 100 points (about
  half its honest-only interval, whose own width varies from run to run).

Both shifts are printed, with the honest-only baseline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import websockets
from django.db.models import Count, Q

from arena import ratings
from arena.abuse.clientip import ip_hash
from arena.models import Vote
from arena.pairing.contestants import contestant_enter
from arena.quality import rules as quality
from serving.models import ServedModel
from tests.factories import make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[1]
PROTECTIONS = ["ARENA_LIMIT_BATTLES_PER_MINUTE", "ARENA_LIMIT_CONCURRENT_GENERATIONS", "ARENA_LIMIT_VOTES_PER_HOUR",
               "ARENA_LIMIT_VOTES_PER_DAY", "ARENA_MIN_VOTE_SECONDS", "ARENA_PROMPT_REPEAT_CAP", "ARENA_OUTLIER_Z",
               "ARENA_OUTLIER_MIN_VOTES", "ARENA_KEY_SHARE_CAP", "ARENA_KEY_SHARE_MIN_VOTES", "ARENA_IPV6_PREFIX"]
MIN_VOTE_SECONDS = 1.0
HONEST_RATERS, HONEST_BATTLES, ATTACK_SOCKETS = 8, 4, 2
# The limits hold the attacker to 26 battles in about four minutes; with them off nothing paces it,
# and in less time it plays twice as many.
ATTACK_BATTLES = {"on": 26, "off": 52}
HONEST_WAIT_S, ATTACK_WAIT_S = 1.2, 1.5
TOPICS = ["a cat", "the sea", "a lighthouse", "winter", "a train", "a library", "rain", "a garden", "a clock",
          "the moon", "bread", "a river"]


def documented_defaults() -> dict:
    """The protections' values when their variables are unset: config/settings.py read by a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in PROTECTIONS and k != "DATABASE_URL"}
    code = ("import json, django; django.setup(); from django.conf import settings; "
            f"print(json.dumps({{n: getattr(settings, n) for n in {PROTECTIONS!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def contestants(transactional_db, vllm_url):
    for name, max_tokens in (("target", 3), ("rival-1", 24), ("rival-2", 24)):
        # One engine model under three names: the unique (endpoint, engine id) pair needs three endpoints.
        model = ServedModel.objects.create(
            public_name=name, endpoint=make_endpoint(base_url=f"{vllm_url}/v1", healthy=True),
            engine_model_id="smollm2-135m-instruct", generation={"temperature": 0.8, "max_tokens": max_tokens})
        contestant_enter(model, boost=name == "target")  # the target is a new model, drawn more often


@pytest.fixture(params=["on", "off"])
def arena(request, monkeypatch, settings, contestants):
    """The running arena with the protections at their documented defaults ("on") or all off; the
    test process's settings match the server's (the refit's key rules run here)."""
    monkeypatch.setenv("ARENA_TRUSTED_PROXIES", "1")
    values = documented_defaults() if request.param == "on" else {name: 0 for name in PROTECTIONS}
    values["ARENA_MIN_VOTE_SECONDS"] = MIN_VOTE_SECONDS if request.param == "on" else 0
    values["ARENA_OUTLIER_MIN_VOTES"] = values["ARENA_OUTLIER_MIN_VOTES"] or 1
    values["ARENA_KEY_SHARE_MIN_VOTES"] = values["ARENA_KEY_SHARE_MIN_VOTES"] or 1
    values["ARENA_IPV6_PREFIX"] = values["ARENA_IPV6_PREFIX"] or 128  # off: every address its own key
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))
        setattr(settings, name, value)
    url = request.getfixturevalue("asgi_server").replace("http://", "ws://") + "/ws/arena/"
    return request.param, url, values


def answer_texts(frame: dict, texts: dict) -> None:
    """Collect the visible text of a side, whatever the frames look like (paced or whole)."""
    if frame.get("side") in texts and isinstance(frame.get("text"), str):
        texts[frame["side"]] += frame["text"]


async def play(url: str, address: str, prompt: str, choose, wait_s: float) -> str:
    """Play a battle and vote ``choose(texts)`` after ``wait_s``; returns the outcome ("voted" or an error code)."""
    async with websockets.connect(url, additional_headers={"X-Forwarded-For": address}) as ws:
        await ws.send(json.dumps({"type": "new_battle"}))
        frame = json.loads(await ws.recv())
        if frame["type"] == "error":
            return frame["code"]
        battle_id, texts = frame["battle_id"], {"a": "", "b": ""}
        await ws.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": prompt}))
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 120)))["type"] != "turn_done":
            if frame["type"] == "error":
                return frame["code"]
            answer_texts(frame, texts)
        await asyncio.sleep(wait_s)  # read (and stay past the minimum voting time)
        await ws.send(json.dumps({"type": "vote", "battle_id": battle_id, "winner": choose(texts)}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return "voted" if frame["type"] == "revealed" else frame["code"]


def longer(texts: dict) -> str:
    return "model_a" if len(texts["a"]) >= len(texts["b"]) else "model_b"


def shorter(texts: dict) -> str:
    return "model_b" if longer(texts) == "model_a" else "model_a"


def spot_target(texts: dict) -> str:
    """The attacker's vote: the target (a much shorter answer) when it is there, else like the crowd."""
    short, long_ = sorted(texts, key=lambda side: len(texts[side]))
    if len(texts[short]) < 0.5 * len(texts[long_]):
        return f"model_{short}"
    return longer(texts)


async def honest_rater(url: str, n: int) -> list[str]:
    rng = random.Random(n)
    outcomes = []
    for k in range(HONEST_BATTLES):
        def choose(texts, rng=rng):
            return rng.choices([longer(texts), shorter(texts), "tie"], [0.7, 0.2, 0.1])[0]

        prompt = f"In two sentences, tell me about {rng.choice(TOPICS)}. (note {n}-{k})"
        outcomes.append(await play(url, f"198.51.100.{n + 1}", prompt, choose, HONEST_WAIT_S))
    return outcomes


async def attacker(url: str, values: dict, battles: int) -> list[str]:
    """Parallel sockets inside one IPv6 /64, a new address, rater id and prompt per battle, paced under the
    battle limit of the whole key (a sliding minute, as the arena counts it); a refusal would be waited out."""
    per_minute = values["ARENA_LIMIT_BATTLES_PER_MINUTE"]
    rng = random.Random(66)
    starts: list[float] = []
    gate = asyncio.Lock()

    async def paced_start() -> None:
        async with gate:
            while per_minute and len(recent := [t for t in starts if t > time.monotonic() - 61.0]) >= per_minute:
                await asyncio.sleep(recent[0] + 61.0 - time.monotonic())
            starts.append(time.monotonic())

    async def loop(worker: int) -> list[str]:
        outcomes = []
        for k in range(worker, battles, ATTACK_SOCKETS):
            address = f"2001:db8:66:1:{rng.randrange(1, 0xFFFF):x}:{rng.randrange(0xFFFF):x}::{k + 1:x}"
            prompt = f"Write two sentences about {rng.choice(TOPICS)} ({rng.getrandbits(40):x})."
            while True:
                await paced_start()
                outcomes.append(await play(url, address, prompt, spot_target, ATTACK_WAIT_S))
                if outcomes[-1] != "rate_limited":
                    break
        return outcomes

    results = await asyncio.gather(*(loop(w) for w in range(ATTACK_SOCKETS)))
    return [outcome for outcomes in results for outcome in outcomes]


async def campaign(url: str, values: dict, battles: int) -> tuple[list[str], list[str]]:
    results = await asyncio.gather(attacker(url, values, battles),
                                   *(honest_rater(url, n) for n in range(HONEST_RATERS)))
    return results[0], [o for outcomes in results[1:] for o in outcomes]


def board(votes) -> ratings.Board:
    rows = list(votes.values_list("battle__model_a__public_name", "battle__model_b__public_name", "winner"))
    names = sorted({r[0] for r in rows} | {r[1] for r in rows})
    a = np.array([names.index(r[0]) for r in rows])
    b = np.array([names.index(r[1]) for r in rows])
    outcome = np.array([ratings.WINNERS.index(r[2]) for r in rows])
    return ratings.compute_board(ratings.PairCounts.from_arrays(names, a, b, outcome), rounds=200, seed=0)


def honest_hashes() -> list[str]:
    return [ip_hash(f"198.51.100.{n + 1}") for n in range(HONEST_RATERS)]


def test_the_adaptive_attack_moves_the_target_only_without_protections(arena, capsys):
    mode, url, values = arena
    attack, honest = asyncio.run(campaign(url, values, ATTACK_BATTLES[mode]))
    assert honest.count("voted") == HONEST_RATERS * HONEST_BATTLES, honest
    assert attack.count("voted") == ATTACK_BATTLES[mode], attack
    quality.outliers_refresh()  # what the refit does first
    counted = Vote.objects.counted()
    everyone, baseline = board(counted), board(counted.filter(ip_hash__in=honest_hashes()))
    i, j = everyone.models.index("target"), baseline.models.index("target")
    shift = float(everyone.rating[i] - baseline.rating[j])
    half = float(baseline.ci_high[j] - baseline.ci_low[j]) / 2
    attack_votes = Vote.objects.exclude(ip_hash__in=honest_hashes())
    attack_counted = counted.exclude(ip_hash__in=honest_hashes()).count()
    for_target = sum(1 for v in attack_votes.select_related("battle__model_a", "battle__model_b")
                     if (v.battle.model_a if v.winner == "model_a" else v.battle.model_b).public_name == "target")
    reasons = dict(attack_votes.values_list("exclusion").annotate(n=Count("pk")))
    # Facts of a battle, not protections, leave a vote out in either mode: an answer that names a model
    # ("target" is an ordinary word), a side that failed, or one whose answer is empty (the target's
    # three tokens can be blank lines: side_incomplete).
    facts = attack_votes.filter(Q(identity_leak=True) | Q(side_error=True)
                                | Q(exclusion=Vote.Exclusion.SIDE_INCOMPLETE)).count()
    with capsys.disabled():
        print(f"\nadaptive attack, protections {mode} (ARENA_MIN_VOTE_SECONDS={values['ARENA_MIN_VOTE_SECONDS']}): "
              f"target honest-only {baseline.rating[j]:.0f} [{baseline.ci_low[j]:.0f}, {baseline.ci_high[j]:.0f}], "
              f"with the attack {everyone.rating[i]:.0f}: shift {shift:+.1f} points, half interval {half:.1f}; "
              f"attack votes {attack_votes.count()} ({for_target} for the target), counted {attack_counted}, "
              f"left out by reason {reasons}, by a fact of the battle {facts}; refused {len(attack) - attack.count('voted')}; attack IP keys {attack_votes.values('ip_hash').distinct().count()}")
    if mode == "on":
        assert attack_votes.values("ip_hash").distinct().count() == 1  # the /64 is one key
        assert abs(shift) < half
    else:
        assert set(reasons) <= {"", Vote.Exclusion.SIDE_INCOMPLETE.value}, reasons  # no protection left one out
        assert attack_counted == ATTACK_BATTLES[mode] - facts and facts <= 2 and for_target >= 8
        # The shift is steady (+218 and +222 points in two runs) but the honest-only interval of 32
        # votes is not (half widths 117 and 209): a fixed 100 points, not the half width, so the
        # test fails only when the attack stops working.
        assert shift > 100
        assert shift > half
