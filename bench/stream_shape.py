"""Can the stream's shape tell the two local models apart before the vote? (issue 19, ARENA_STREAM)

Battles between the two local models -- SmolLM2-135M-Instruct (``smollm2-135m-instruct``) and
Gemma 3 270M (``gemma-3-270m``, served with ``serving/chat_templates/gemma3.jinja``), each with
the generation settings of its local model spec (``serving/local_models.py``: temperature 0.7,
top_p 0.9, and Gemma's repetition penalty 1.3) -- through the real consumer: daphne serving the
ASGI app on a scratch SQLite database, one web process per stream mode:

* ``tokens``: one ``delta`` per engine chunk, the stream before pacing (the baseline);
* ``paced``: the default (``arena/battle/pacing.py``);
* ``whole``: both answers complete, together.

Each prompt (real arena prompts, ``data/arena_prompts``) is played once in each mode, the modes
in rotating order. Every frame is recorded with its arrival time. Each side of each battle is
a sample labelled with its model (read from the database), described by its stream shape --
the four features of issue 19 (frames, characters per frame, time to the first delta, frames
per second), and all eight: those, the median frame's characters, the share of frames that
begin with whitespace, the times of its last delta and of its ``side_done`` -- and, as the
reference, by its answer's length alone. A
nearest-centroid classifier and a logistic regression (features standardised on the training
folds) are scored by leave-one-battle-out cross-validation; the printed accuracy is the share of sides it names
right (chance: 50%). The "paired" figure is a stronger attacker that knows one side of each
battle is each model and picks the likelier assignment. Failed sides drop their battle.

    .venv/bin/python bench/stream_shape.py [--battles 32] [--max-tokens 48] [--smoke]
        [--smollm-url http://127.0.0.1:8190] [--gemma-url http://127.0.0.1:8191] [--save FEATURES.json]
    .venv/bin/python bench/stream_shape.py --analyse FEATURES.json

Without a URL, the bench starts that model's engine itself (converted models under var/models).
Nothing here asserts: the machine is shared, so figures vary from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.arena_web import REPO, Turn, play_turn, scratch_arena, start_engine, start_web  # noqa: E402

MODES = ("tokens", "paced", "whole")
#: What issue 19 measured (97.9% of sides named on the unpaced stream), then every shape feature
#: this bench has: the above, the median frame, the share of frames that start a word (a tokenizer
#: splits words; pacing never does), and when the side's last delta and its side_done arrived.
ISSUE_SHAPE = ("frames", "chars_per_frame", "first_delta_s", "frames_per_s")
SHAPE = (*ISSUE_SHAPE, "median_frame_chars", "word_start_share", "last_delta_s", "side_done_s")
LENGTH = ("chars",)
PROMPTS = REPO / "data" / "arena_prompts" / "oasst_prompt_lottery_en_250.jsonl"


def side_features(turn: Turn, side: str) -> dict[str, float]:
    deltas = [(t, f) for t, f in turn.frames if f["type"] == "delta" and f["side"] == side]
    done = next(t for t, f in turn.frames if f["type"] == "side_done" and f["side"] == side)
    chars = sum(len(f["text"]) for _, f in deltas)
    first, last = (deltas[0][0], deltas[-1][0]) if deltas else (done, done)
    return {
        "frames": len(deltas), "chars_per_frame": chars / max(1, len(deltas)), "first_delta_s": first,
        "frames_per_s": (len(deltas) - 1) / (last - first) if last > first else 0.0, "last_delta_s": last,
        "side_done_s": done, "chars": chars,
        "median_frame_chars": statistics.median(len(f["text"]) for _, f in deltas) if deltas else 0.0,
        "word_start_share": sum(f["text"][:1].isspace() for _, f in deltas) / max(1, len(deltas)),
        "frames_seen": [[round(t, 4), len(f["text"])] for t, f in deltas],  # kept for --save only
    }


def nearest_centroid_scores(samples: list[dict], features: tuple[str, ...]) -> tuple[float, float]:
    """Leave-one-battle-out accuracy of a nearest-centroid classifier: per side, and per battle
    for the attacker that assigns the two models to the two sides together."""
    import numpy as np

    battles = sorted({s["battle"] for s in samples})
    labels = sorted({s["model"] for s in samples})
    x = np.array([[s[f] for f in features] for s in samples], dtype=float)
    y = np.array([labels.index(s["model"]) for s in samples])
    group = np.array([battles.index(s["battle"]) for s in samples])
    right_sides = right_battles = 0
    for held in range(len(battles)):
        train, test = group != held, np.flatnonzero(group == held)
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        std[std < 1e-9] = 1.0
        z = (x - mean) / std
        centroids = np.array([z[train & (y == k)].mean(axis=0) for k in range(len(labels))])
        dist = ((z[test][:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)  # sides x labels
        right_sides += int((dist.argmin(axis=1) == y[test]).sum())
        if len(test) == 2:
            as_labelled = dist[0, y[test[0]]] + dist[1, y[test[1]]]
            swapped = dist[0, y[test[1]]] + dist[1, y[test[0]]]
            right_battles += int(as_labelled < swapped)
    return right_sides / len(samples), right_battles / len(battles)


def logistic_scores(samples: list[dict], features: tuple[str, ...], *, l2: float = 1.0) -> tuple[float, float]:
    """The same leave-one-battle-out scores for an L2-regularised logistic regression (Newton's
    method; it weighs the features, where nearest-centroid lets noisy ones dilute a telling one)."""
    import numpy as np

    battles = sorted({s["battle"] for s in samples})
    labels = sorted({s["model"] for s in samples})
    x = np.array([[s[f] for f in features] for s in samples], dtype=float)
    y = np.array([labels.index(s["model"]) for s in samples], dtype=float)
    group = np.array([battles.index(s["battle"]) for s in samples])
    penalty = l2 * np.diag([0.0] + [1.0] * len(features))  # not on the intercept
    right_sides = right_battles = 0
    for held in range(len(battles)):
        train, test = group != held, np.flatnonzero(group == held)
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        std[std < 1e-9] = 1.0
        z = np.c_[np.ones(len(x)), (x - mean) / std]
        w = np.zeros(z.shape[1])
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-z[train] @ w))
            hessian = (z[train].T * (p * (1 - p))) @ z[train] + penalty
            w -= np.linalg.solve(hessian, z[train].T @ (p - y[train]) + penalty @ w)
        score = z[test] @ w
        right_sides += int(((score > 0) == (y[test] > 0.5)).sum())
        if len(test) == 2:
            right_battles += int((score[0] - score[1]) * (y[test[0]] - y[test[1]]) > 0)
    return right_sides / len(samples), right_battles / len(battles)


def register_models(urls: dict[str, str], max_tokens: int, one_engine: bool = False) -> None:
    """Both contestants; ``one_engine``: both are SmolLM2 under the two names (a smoke run's check
    that the bench works where Gemma is not converted; its figures mean nothing)."""
    from serving.local_models import LOCAL_MODELS  # Django is set up in main(), after this module loads
    from serving.models import Endpoint, ServedModel  # Django is set up in main(), after this module loads

    for key, url in urls.items():
        spec = LOCAL_MODELS["smollm2" if one_engine else key]
        endpoint = Endpoint.objects.create(name=f"bench-{key}", base_url=f"{url}/v1", healthy=True,
                                           kind=Endpoint.Kind.VLLM)
        ServedModel.objects.create(public_name=key, endpoint=endpoint, engine_model_id=spec.served_name,
                                   generation={**spec.generation, "max_tokens": max_tokens})


def label_sides(turn: Turn) -> dict[str, str]:
    from arena.models import Battle  # Django is set up in main(), after this module loads

    battle = Battle.objects.select_related("model_a", "model_b").get(public_id=turn.battle_id)
    return {"a": battle.model_a.public_name, "b": battle.model_b.public_name}


def summarise(samples: dict[str, list[dict]], battles: int) -> None:
    print(f"\nsides named right, leave-one-battle-out ({battles} battles asked per mode; chance 50%); shape4: the "
          "issue's four features, shape8: all (SHAPE); paired: knowing each battle has one side of each model")
    for name, scores in (("nearest centroid", nearest_centroid_scores), ("logistic", logistic_scores)):
        print(f"\n{name:16} {'battles':>7} {'shape4':>7} {'shape8':>7} {'length':>7} {'best-length':>12}   "
              "paired: shape4 shape8 length")
        for mode in MODES:
            rows = samples[mode]
            if len({r["battle"] for r in rows}) < 3:
                print(f"{mode:16} too few battles")
                continue
            four, four_paired = scores(rows, ISSUE_SHAPE)
            shape, shape_paired = scores(rows, SHAPE)
            length, length_paired = scores(rows, LENGTH)
            print(f"{mode:16} {len(rows) // 2:7d} {four:7.1%} {shape:7.1%} {length:7.1%} "
                  f"{(max(four, shape) - length) * 100:+11.1f}p   {four_paired:14.1%} {shape_paired:6.1%} "
                  f"{length_paired:6.1%}")
    print(f"\nmean shape per model ({', '.join((*SHAPE, *LENGTH))}):")
    for mode in MODES:
        for model in sorted({r["model"] for r in samples[mode]}):
            rows = [r for r in samples[mode] if r["model"] == model]
            means = "  ".join(f"{statistics.fmean(r[f] for r in rows):7.2f}" for f in (*SHAPE, *LENGTH))
            print(f"{mode:8} {model:8} {means}")


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--smoke", action="store_true", help="4 battles of 12 tokens: checks the bench runs")
    parser.add_argument("--smollm-url", default="")
    parser.add_argument("--gemma-url", default="")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--one-engine", action="store_true",
                        help="both sides on the SmolLM2 engine (--smollm-url): checks the bench runs without Gemma")
    parser.add_argument("--save", default="", help="write every side's features here (JSON) to re-analyse")
    parser.add_argument("--analyse", default="", help="only print the figures of features saved by --save")
    args = parser.parse_args()
    if args.smoke:
        args.battles, args.max_tokens = 4, 12
    if args.analyse:
        saved = json.loads(Path(args.analyse).read_text())
        summarise(saved, len({r["battle"] for rows in saved.values() for r in rows}))
        return

    env = scratch_arena(Path(tempfile.mkdtemp(prefix="arena-stream-shape-")))
    engines, webs = [], []
    try:
        urls = {}
        for key, url in (("smollm2", args.smollm_url), ("gemma3", args.gemma_url)):
            if key == "gemma3" and args.one_engine:
                url = urls["smollm2"]
            if not url:
                engines.append(start_engine(key))
                url = engines[-1].spec.root_url
            urls[key] = url.rstrip("/")
        register_models(urls, args.max_tokens, args.one_engine)
        ws_urls = {}
        for mode in MODES:
            web, ws_urls[mode] = start_web(env, ARENA_STREAM=mode)
            webs.append(web)
        lines = PROMPTS.read_text().splitlines()
        prompts = [json.loads(line) for line in random.Random(args.seed).sample(lines, args.battles)]
        samples: dict[str, list[dict]] = {mode: [] for mode in MODES}
        dropped = 0
        signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            for index, prompt in enumerate(prompts):
                for mode in MODES[index % 3:] + MODES[: index % 3]:
                    turn = asyncio.run(play_turn(ws_urls[mode], prompt))
                    states = {f["side"]: f["state"] for _, f in turn.frames if f["type"] == "side_done"}
                    if set(states.values()) != {"done"}:
                        dropped += 1
                        continue
                    for side, model in label_sides(turn).items():
                        samples[mode].append({"battle": index, "model": model, **side_features(turn, side)})
                print(f"battle {index + 1}/{len(prompts)} played in every mode", flush=True)
        except KeyboardInterrupt:
            print("interrupted: the figures below are of the battles played so far")
        if dropped:
            print(f"{dropped} turns dropped: a side failed")
        if args.save:
            Path(args.save).write_text(json.dumps(samples, indent=1))
        summarise(samples, args.battles)
    finally:
        for web in webs:
            web.terminate()
        for engine in engines:
            engine.stop()


if __name__ == "__main__":
    main()
