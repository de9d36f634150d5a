"""A dataset's rows as a recipe sees them, and their token lengths, with a base model's own tokenizer.
Runs in the engine environment (has ``transformers``); never imports Django.

    python -m training.tools.token_lengths DATASET.jsonl --kind KIND --tokenizer MODEL_DIR [--rows 5]

Prints one JSON object on stdout::

    {"rows": [first rows rendered: {"prompt", "chosen", "rejected"} / {"prompt", "completion", "label"} /
              {"text"} / {"prompt"}, each part with its token count],
     "lengths": [one token length per measured row], "total_rows": n, "measured_rows": m,
     "prompt_lengths": [the prompt's length per measured row; preference pairs and KTO rows only]}

A row's length is what ``max_length`` bounds in its recipe: the whole chat-formatted conversation
(SFT), the templated prompt plus the longer of the two replies (preference pairs), the prompt plus
the answer (KTO), the prompt with the generation prompt (online RL; the completion is generated) or
the text (pretraining). TRL's DPO and KTO trainers also drop a row whose prompt alone fills
``max_length``: hence the prompt lengths. Rendering follows TRL: the prompt through the chat template
with the generation prompt, a reply as the rest of the templated prompt+reply conversation.

Datasets above ``MAX_MEASURED_ROWS`` rows are measured on a seeded sample of that many (``measured_rows``).
Exits 2 with a one-line reason on stderr (rows that do not parse, no local tokenizer, no chat template);
nothing is fetched from a model hub: the tokenizer is read from the local directory only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

# before transformers / tokenizers are imported: a missing file must fail, never download
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from training import formats  # noqa: E402

#: A preference pair (five templated renderings) took about 2 ms of CPU with SmolLM2's tokenizer
#: (HH-RLHF helpful's 2,354 pairs: 5 s, plus 5 s to import transformers): 20,000 rows stay within a
#: minute, and a larger dataset's length distribution is well estimated by a sample that size.
MAX_MEASURED_ROWS = 20_000


#: a rendered part longer than this is stored and shown by its start only
MAX_SHOWN_CHARS = 4000


class PreviewProblem(Exception):
    """A reason the preview cannot be computed, for the admin (one line)."""


def load_tokenizer(model_dir: str, kind: str):
    directory = Path(model_dir)
    if not directory.is_dir() or not any((directory / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise PreviewProblem(f"the tokenizer is not available locally: {model_dir} has no tokenizer files "
                             "(nothing is downloaded from a model hub)")
    import transformers
    from transformers import AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise PreviewProblem(f"the tokenizer in {model_dir} could not be loaded locally: {_one_line(exc)}") from None
    if kind != formats.TEXT and not tokenizer.chat_template:
        raise PreviewProblem(f"the tokenizer in {model_dir} has no chat template (the recipes refuse it too)")
    return tokenizer


class Renderer:
    """One normalised row -> (the parts a recipe sees, as text with token counts; the row's length; the
    length of its prompt, or None for a kind without one). Lengths are counted as TRL tokenizes: the
    whole templated conversation (prompt + reply for pairs and KTO), the prompt with the generation prompt."""

    def __init__(self, tokenizer, kind: str):
        self.tok = tokenizer
        self.kind = kind

    def ids(self, messages: list[dict], *, generation_prompt: bool = False) -> list[int]:
        return self.tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt,
                                            return_dict=True)["input_ids"]

    def text(self, messages: list[dict], *, generation_prompt: bool = False) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def reply(self, prompt: list[dict], prompt_text: str, n_prompt: int, reply: list[dict]) -> tuple[dict, int]:
        """A reply as the rest of the templated prompt+reply conversation; the whole conversation's length."""
        whole = self.text(prompt + reply)
        n_whole = len(self.ids(prompt + reply))
        rest = whole[len(prompt_text):] if whole.startswith(prompt_text) else whole
        return _part(rest, n_whole - n_prompt), n_whole

    def __call__(self, row: dict[str, Any]) -> tuple[dict[str, Any], int, int | None]:
        if self.kind == formats.SFT:
            n = len(self.ids(row["messages"]))
            return {"text": _part(self.text(row["messages"]), n)}, n, None
        if self.kind == formats.TEXT:
            n = len(self.tok(row["text"])["input_ids"])
            return {"text": _part(row["text"], n)}, n, None
        prompt_text = self.text(row["prompt"], generation_prompt=True)
        n_prompt = len(self.ids(row["prompt"], generation_prompt=True))
        parts: dict[str, Any] = {"prompt": _part(prompt_text, n_prompt)}
        if self.kind == formats.PROMPT:
            return parts, n_prompt, n_prompt
        if self.kind == formats.UNPAIRED:
            parts["completion"], n = self.reply(row["prompt"], prompt_text, n_prompt, row["completion"])
            return {**parts, "label": row["label"]}, n, n_prompt
        parts["chosen"], n_chosen = self.reply(row["prompt"], prompt_text, n_prompt, row["chosen"])
        parts["rejected"], n_rejected = self.reply(row["prompt"], prompt_text, n_prompt, row["rejected"])
        return parts, max(n_chosen, n_rejected), n_prompt


def _part(text: str, tokens: int) -> dict[str, Any]:
    """A rendered part; a very long one is shown by its start (the page stores it), its count is whole."""
    if len(text) <= MAX_SHOWN_CHARS:
        return {"text": text, "tokens": tokens}
    return {"text": text[:MAX_SHOWN_CHARS], "tokens": tokens, "more_chars": len(text) - MAX_SHOWN_CHARS}


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)[:300]


def measure(dataset: str, kind: str, model_dir: str, shown: int) -> dict[str, Any]:
    if kind not in formats.NORMALISED_FORMAT:
        raise PreviewProblem(f"unknown dataset kind {kind!r}")
    try:
        rows = formats.load_normalised(dataset, kind)
    except FileNotFoundError:
        raise PreviewProblem(f"the dataset file {dataset} is missing") from None
    except ValueError as exc:
        errors = str(exc).splitlines()[1:4]
        raise PreviewProblem(f"the dataset's rows do not parse as {kind} rows: {'; '.join(errors)}") from None
    render = Renderer(load_tokenizer(model_dir, kind), kind)
    measured = rows
    if len(rows) > MAX_MEASURED_ROWS:
        measured = [rows[i] for i in sorted(random.Random(0).sample(range(len(rows)), MAX_MEASURED_ROWS))]
    first = [render(row)[0] for row in rows[:shown]]
    lengths, prompt_lengths = [], []
    for row in measured:
        _, length, prompt_length = render(row)
        lengths.append(length)
        prompt_lengths.append(prompt_length)
    return {"rows": first, "lengths": lengths, "total_rows": len(rows), "measured_rows": len(measured),
            **({"prompt_lengths": prompt_lengths} if kind in (formats.PREFERENCE, formats.UNPAIRED) else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--kind", required=True)
    parser.add_argument("--tokenizer", required=True, help="the base model's local directory")
    parser.add_argument("--rows", type=int, default=5, help="how many of the first rows to render")
    args = parser.parse_args(argv)
    try:
        result = measure(args.dataset, args.kind, args.tokenizer, args.rows)
    except PreviewProblem as exc:
        print(str(exc), file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
