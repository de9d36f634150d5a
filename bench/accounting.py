"""The added cost of usage/cost accounting and pairing holds on the battle and vote paths.

One process, a scratch SQLite database under a temporary ARENA_DATA_DIR, no engine: the
accounting is database work, so the streams themselves are left out (their usage comes back
in the last chunk either way). Each round runs both paths twice, with ``ARENA_ACCOUNTING`` on
and off in alternating order:

- battle path: ``battle_create`` (pairing, holds) + ``battle_turn_begin`` + two ``battle_side_finish``
  (usage, cost);
- vote path: ``battle_vote``.

The database holds ``--models`` priced models (a third with daily budgets, one engine with
adapters and ``--max-loras``) and ``--history`` responses spread over the last 24 hours, so
the error-rate window and the daily tallies have rows. Prints the medians and the on/off ratio of each path.

    .venv/bin/python bench/accounting.py [--rounds 200] [--models 20] [--history 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup_database(models: int, history: int):
    import django
    from django.core.management import call_command

    django.setup()
    import logging

    logging.disable(logging.WARNING)
    call_command("migrate", verbosity=0)
    from datetime import timedelta
    from decimal import Decimal

    from django.db.models import Sum
    from django.utils import timezone

    from arena.battle.costs import spend_record  # Django is set up in main(), after this module loads
    from arena.models import Battle, Response, Turn  # Django is set up in main(), after this module loads
    from serving.models import Endpoint, ServedModel  # Django is set up in main(), after this module loads

    provider = Endpoint.objects.create(name="provider", base_url="http://bench.invalid/v1", healthy=True,
                                       kind="openai", daily_budget_usd=Decimal("1000"))
    engine = Endpoint.objects.create(name="engine", base_url="http://engine.invalid/v1", healthy=True,
                                     kind="vllm", max_loras=2)
    base = ServedModel.objects.create(public_name="base", endpoint=engine, engine_model_id="base")
    rows = [base]
    for k in range(models - 1):
        on_engine = k % 4 == 0
        rows.append(ServedModel.objects.create(
            public_name=f"model-{k:03d}", endpoint=engine if on_engine else provider, engine_model_id=f"m{k}",
            kind="lora" if on_engine else "base", parent=base if on_engine else None,
            price_input_per_mtok=Decimal("0.5"), price_output_per_mtok=Decimal("1.5"),
            daily_budget_usd=Decimal("500") if k % 3 == 0 else None, adapter_sha256="0" * 64 if on_engine else "",
        ))
    battles = Battle.objects.bulk_create([
        Battle(model_a=rows[i % len(rows)], model_b=rows[(i + 1) % len(rows)], rater_id="history", status="voted")
        for i in range(history // 2)
    ])
    turns = Turn.objects.bulk_create([Turn(battle=b, index=0, prompt="p") for b in battles])
    # Spread over the last 24 hours, as a day of battles would be (the error-rate window sees its share).
    now, step = timezone.now(), timedelta(days=1) / max(1, len(turns))
    Response.objects.bulk_create([
        Response(turn=t, side=side, model=t.battle.model(side), state="error" if i % 17 == 0 else "done",
                 content="x", prompt_tokens=20, completion_tokens=50, cost_usd=Decimal("0.0000850"),
                 ttft_ms=90.0, tokens_per_s=30.0, started_at=now - step * i)
        for i, t in enumerate(turns) for side in ("a", "b")
    ])
    for model_id, spent in Response.objects.values_list("model_id").annotate(spent=Sum("cost_usd")):
        spend_record(model_id, spent)


def one_round(accounting: bool, n: int) -> tuple[float, float]:
    """(battle path seconds, vote path seconds) for one battle with accounting on or off."""
    from django.conf import settings

    from arena import services  # Django is set up in main(), after this module loads

    settings.ARENA_ACCOUNTING = accounting
    rater = f"rater-{n}-{int(accounting)}"
    t0 = time.perf_counter()
    battle = services.battle_create(rater_id=rater)
    plan = services.battle_turn_begin(battle_id=battle.public_id, rater_id=rater, text="Tell me about the sea.")
    for side in ("a", "b"):
        services.battle_side_finish(response_id=plan.response_ids[side], state="done", content="The sea is wide.",
                                    completion_tokens=5, prompt_tokens=20, ttft_ms=80.0, tokens_per_s=25.0)
    t1 = time.perf_counter()
    services.battle_vote(battle_id=battle.public_id, rater_id=rater, winner="tie")
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--smoke", action="store_true", help="10 rounds over 200 responses (seconds, for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.history = 10, 200
    scratch = tempfile.mkdtemp(prefix="arena-bench-accounting-")
    os.environ["ARENA_DATA_DIR"] = scratch
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    setup_database(args.models, args.history)
    for n in range(10):  # warm-up: imports, query compilation, page cache
        one_round(n % 2 == 0, -n - 1)
    times: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    for n in range(args.rounds):
        for accounting in ((True, False) if n % 2 == 0 else (False, True)):
            battle_s, vote_s = one_round(accounting, n)
            times[accounting][0].append(battle_s)
            times[accounting][1].append(vote_s)
    print(f"SQLite, {args.models} models, {args.history} responses over the last 24 h, {args.rounds} rounds each")
    for index, path in enumerate(("battle path", "vote path")):
        on, off = statistics.median(times[True][index]), statistics.median(times[False][index])
        print(f"{path:12s} median on {on * 1000:7.2f} ms   off {off * 1000:7.2f} ms   ratio on/off {on / off:.2f}")


if __name__ == "__main__":
    main()
