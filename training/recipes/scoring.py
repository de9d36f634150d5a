"""Scoring with a trained reward model (a checkpoint of kind "scorer"): the base model's
sequence-classification body with the saved LoRA adapter and score head.

* ``load_scorer(base, adapter_dir, device)`` -- (tokenizer, model), merged, in eval mode;
* ``score(tokenizer, model, conversations, max_length)`` -- one float per conversation
  (chat template applied; higher is better);
* ``pair_accuracy(tokenizer, model, rows, max_length)`` -- the fraction of preference rows whose
  chosen reply scores above the rejected one (ties count half);
* ``python -m training.recipes.scoring REQUEST.json`` -- reads ``{"base_model_path",
  "adapter_path", "max_length", "items": [{"prompt": [...], "a": str, "b": str}]}`` and prints
  ``{"scores": [[score_a, score_b], ...]}`` as JSON (how the web app scores text pairs and the
  gate judges, without importing torch).

Engine environment only; never imports Django.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from training.recipes import common

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH = 8


def load_scorer(base: Path, adapter_dir: Path, device: str = "cpu"):
    from peft import PeftModel


    tokenizer, model = common.load_tokenizer_and_model(base, device, None, seq_cls=True)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.to(device).eval()
    return tokenizer, model


def score(tokenizer, model, conversations: list[list[dict[str, str]]], max_length: int = 1024) -> list[float]:
    import torch

    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    out: list[float] = []
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"  # keep the reply, which is what is being judged
    try:
        for i in range(0, len(texts), BATCH):
            batch = tokenizer(texts[i : i + BATCH], return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out += model(**batch).logits[:, 0].float().tolist()
    finally:
        tokenizer.truncation_side = side
    return out


def pair_accuracy(tokenizer, model, rows: list[dict[str, Any]], max_length: int) -> float | None:
    if not rows:
        return None
    chosen = score(tokenizer, model, [r["prompt"] + r["chosen"] for r in rows], max_length)
    rejected = score(tokenizer, model, [r["prompt"] + r["rejected"] for r in rows], max_length)
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True))
    return round(wins / len(rows), 4)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m training.recipes.scoring REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    import torch

    torch.set_num_threads(int(request.get("num_threads") or 1))
    tokenizer, model = load_scorer(Path(request["base_model_path"]), Path(request["adapter_path"]),
                                   request.get("device") or "cpu")
    items = request["items"]
    max_length = int(request.get("max_length") or 1024)
    a = score(tokenizer, model, [i["prompt"] + [{"role": "assistant", "content": i["a"]}] for i in items], max_length)
    b = score(tokenizer, model, [i["prompt"] + [{"role": "assistant", "content": i["b"]}] for i in items], max_length)
    print(json.dumps({"scores": [[x, y] for x, y in zip(a, b, strict=True)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
