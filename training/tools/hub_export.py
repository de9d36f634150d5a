"""Export a Hugging Face hub dataset split to JSON Lines. Runs in the engine environment (has ``datasets``).

    python -m training.tools.hub_export ORG/NAME [--split train] --out FILE.jsonl

Exits 2 with a one-line reason on stderr when the hub cannot be reached or the
dataset does not exist; the web side shows that line to the admin.

A hub id is never read as a local path: ``datasets.load_dataset`` loads an existing folder or
file of that name (relative to the working directory) instead of the hub dataset, so an id
such as ``var/training`` would read the server's own files, outside ``ARENA_IMPORT_ROOTS``. The
tool refuses an absolute or home-relative id and loads from a fresh empty working directory,
where no relative name exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if os.path.isabs(args.dataset) or args.dataset.startswith(("~", ".")):
        print(f"ValueError: {args.dataset[:100]!r} is a path, not a hub dataset id", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    with tempfile.TemporaryDirectory(prefix="hub-export-") as empty:
        os.chdir(empty)  # nothing here: a relative name can only mean the hub
        return _export(args.dataset, args.split, out)


def _export(dataset: str, split: str, out: str) -> int:
    try:
        from datasets import load_dataset

        data = load_dataset(dataset, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "could not load"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        offline = any(word in f"{type(exc).__name__} {text}".lower() for word in ("offline", "connect", "resolve"))
        hint = " (the hub is unreachable from this server; import the file instead)" if offline else ""
        print(f"{type(exc).__name__}: {text}{hint}", file=sys.stderr)
        return 2
    with open(out, "w", encoding="utf-8") as fh:
        for row in data:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
