"""Identity-word matching on real answers: how often it flags, and what it costs per vote.

Compares, in one process, the literal matcher the arena had before (a regular expression per
word on the lower-cased text, kept here as the baseline) with ``arena.quality.identity.find_identity_words``
(NFKC, format characters removed, separators between letters ignored). The words are the
default ``ARENA_IDENTITY_WORDS`` plus the words of the two local models, as a fresh arena has.

The answers are real model and human answers: the shipped data (``data/``: OASST assistant
turns, HH-RLHF chosen and rejected answers, UltraChat assistant turns) and, when present,
``../shared/data`` (Arena-Hard GPT-4 answers, MT-Bench reference answers, Copilot-Arena code
completions, LIMA answers). Prints per source the answers flagged by each matcher, then every
answer the new matcher flags and the literal one does not (to read: each is a false positive
unless it really names a model), and the median time per answer of each and their ratio.

    .venv/bin/python bench/identity_words.py [--smoke] [--show 40]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def literal_find(answers: list[str], words: list[str]) -> list[str]:
    """The matcher before issue 19 (literal words, version suffixes allowed): the baseline."""
    text = "\n".join(answers).lower()
    found = set()
    for word in words:
        word = " ".join(word.strip().lower().split())
        tail = "" if word[-1].isdigit() else r"(?![^\W\d_])"
        if len(word) >= 2 and re.search(rf"(?<![^\W_]){re.escape(word)}{tail}", text):
            found.add(word)
    return sorted(found)


def _jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _hh_answers(path: Path):
    for row in _jsonl(path):
        for key in ("chosen", "rejected"):
            yield row[key].rsplit("\n\nAssistant:", 1)[-1].strip()


def sources(data: Path, shared: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}

    def add(name: str, path: Path, reader) -> None:
        if path.exists():
            found[name] = [a for a in reader(path) if a and a.strip()]

    add("oasst assistant turns (data/)", data / "sft_chat/oasst_en_messages.jsonl",
        lambda p: (m["content"] for row in _jsonl(p) for m in row["messages"] if m["role"] == "assistant"))
    add("hh-rlhf helpful answers (data/)", data / "hh_rlhf/helpful-base_test.jsonl.gz", _hh_answers)
    add("hh-rlhf harmless answers (data/)", data / "hh_rlhf/harmless-base_test.jsonl.gz", _hh_answers)
    add("ultrachat assistant turns (data/)", data / "sft_chat/ultrachat_200k_test_gen_5rows.jsonl",
        lambda p: (m["content"] for row in _jsonl(p) for m in row["messages"] if m["role"] == "assistant"))
    add("arena-hard gpt-4 answers (shared)", shared / "arena_prompts/arena_hard_v0.1_answer_gpt-4-0314.jsonl.gz",
        lambda p: (m["content"]["answer"] for row in _jsonl(p) for m in row["messages"] if m["role"] == "assistant"))
    add("mt-bench reference answers (shared)", shared / "arena_prompts/mt_bench_reference_answer_gpt-4.jsonl",
        lambda p: (t for row in _jsonl(p) for c in row["choices"] for t in c["turns"]))
    if (shared / "arena_battles/copilot_arena_examples_v1.csv").exists():
        import csv

        with open(shared / "arena_battles/copilot_arena_examples_v1.csv", newline="", encoding="utf-8") as handle:
            found["copilot-arena completions (shared)"] = [
                row[k] for row in csv.DictReader(handle) for k in ("completion_a", "completion_b") if (row[k] or "").strip()]
    if (shared / "sft_chat/lima_train.json.gz").exists():
        with gzip.open(shared / "sft_chat/lima_train.json.gz", "rt", encoding="utf-8") as handle:
            found["lima answers (shared)"] = [row["output"] for row in json.load(handle) if row["output"].strip()]
    return found


def identity_word_list() -> list[str]:
    from django.conf import settings

    from arena.quality.identity import (
        model_identity_words,  # Django is set up in main(), after this module loads
    )
    from serving.local_models import LOCAL_MODELS  # Django is set up in main(), after this module loads

    words = {w.strip().lower() for w in settings.ARENA_IDENTITY_WORDS if w.strip()}
    for local in LOCAL_MODELS.values():
        words |= model_identity_words([local.served_name, local.directory], local.organization)
    return sorted(words)


def _median_us(find, batches: list[list[str]], words: list[str]) -> float:
    times = []
    for answers in batches:
        start = time.perf_counter()
        find(answers, words)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the first 100 answers of each source")
    parser.add_argument("--show", type=int, default=40, help="extra flags to print")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from django.conf import settings

    from arena.quality.identity import (
        find_identity_words,  # Django is set up in main(), after this module loads
    )

    words = identity_word_list()
    found = sources(Path(settings.ARENA_BUILTIN_DATA_DIR), Path(settings.ARENA_SHARED_DATA_DIR))
    print(f"{len(words)} identity words: {', '.join(words)}\n")
    total = literal_total = new_total = 0
    extra: list[tuple[str, list[str], str]] = []
    print(f"{'source':40} {'answers':>8} {'literal':>8} {'new':>8}")
    for name, answers in found.items():
        answers = answers[:100] if args.smoke else answers
        literal = [literal_find([a], words) for a in answers]
        new = [find_identity_words([a], words) for a in answers]
        total += len(answers)
        literal_total += sum(bool(x) for x in literal)
        new_total += sum(bool(x) for x in new)
        extra += [(name, n, a) for a, old, n in zip(answers, literal, new, strict=True) if n and not old]
        print(f"{name:40} {len(answers):>8} {sum(bool(x) for x in literal):>8} {sum(bool(x) for x in new):>8}")
    print(f"{'all':40} {total:>8} {literal_total:>8} {new_total:>8}")
    print(f"\nflag rate: literal {literal_total / total:.2%}, new {new_total / total:.2%}; "
          f"flagged only by the new matcher: {len(extra)} ({len(extra) / total:.2%})")
    for name, hit, answer in extra[: args.show]:
        joined = " ".join(answer.split())
        print(f"  [{name}] {hit}: {joined[:160]!r}")

    # Cost per vote: both sides' answers of one battle (two answers) against the word list.
    pool = [a for answers in found.values() for a in answers]
    pairs = [[pool[i], pool[i + 1]] for i in range(0, min(len(pool) - 1, 200 if args.smoke else 2000), 2)]
    literal_us = _median_us(literal_find, pairs, words)
    new_us = _median_us(find_identity_words, pairs, words)
    chars = statistics.median(len(a) + len(b) for a, b in pairs)
    print(f"\nper vote ({len(pairs)} answer pairs, median {chars:.0f} characters): literal {literal_us:.0f} us, "
          f"new {new_us:.0f} us, ratio new/literal {new_us / literal_us:.2f}")
    long_pair = [["x" * 3000 + " Ｓｍｏｌ\u200bLM " * 50, "é " * 2000]]
    print(f"long non-ASCII pair (6,000+ characters): literal {_median_us(literal_find, long_pair * 20, words):.0f} us, "
          f"new {_median_us(find_identity_words, long_pair * 20, words):.0f} us")


if __name__ == "__main__":
    main()
