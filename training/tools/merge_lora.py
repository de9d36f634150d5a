"""Fold a LoRA adapter into its base and save the whole model. Runs in the engine environment (torch, peft).

    python -m training.tools.merge_lora --base BASE_DIR --adapter ADAPTER_DIR --out OUT_DIR [--chat-template FILE]

Writes ``OUT_DIR`` (which must not exist yet) with the merged weights as safetensors in the
base's dtype, its config, generation config and tokenizer, as ``transformers`` and vLLM load a
model directory. ``--chat-template`` stores that Jinja template in the tokenizer (the base
endpoint's own template, when the base's tokenizer has none), so the merged model chats alone.
Reads no network (``HF_HUB_OFFLINE``). Exits 2 with a one-line reason on stderr when a directory
is missing or the adapter does not fit the base.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chat-template", default="")
    args = parser.parse_args(argv)
    base, adapter, out = Path(args.base), Path(args.adapter), Path(args.out)
    if not (base / "config.json").is_file():
        return _fail(f"the base model directory {base} has no config.json")
    if not (adapter / "adapter_config.json").is_file():
        return _fail(f"the adapter directory {adapter} has no adapter_config.json")
    if out.exists():
        return _fail(f"{out} already exists")
    try:
        _merge(base, adapter, out, Path(args.chat_template) if args.chat_template else None)
    except Exception as exc:  # noqa: BLE001 - torch/peft raise many kinds; each means "could not merge"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(f"{type(exc).__name__}: {text}"[:500])
    return 0


def _merge(base: Path, adapter: Path, out: Path, chat_template: Path | None) -> None:
    # Heavy imports here only: --help and the argument checks answer without loading torch.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base)
    if chat_template is not None:
        tokenizer.chat_template = chat_template.read_text(encoding="utf-8")
    tmp = out.with_name(out.name + ".partial")
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)  # a half-written model is never left under the name asked for


def _fail(reason: str) -> int:
    print(reason, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
