"""The model card of an exported model: a README.md with YAML front matter, as model hubs read it.

Pure (no Django): :func:`render_card` takes the facts gathered by ``training.export.export_facts``
(plain dicts and lists) and returns the text. The front matter holds the hub's own keys
(``base_model``, ``library_name``, ``license``, ``tags``, ``pipeline_tag``) and an ``arena`` block
with everything the arena knew at export time: method, dataset and its license, the dataset's
``commercial_use``, training settings, the gate's result and the rating with its interval, its
vote count and its provisional flag. A dataset with ``commercial_use: false`` also adds the tag
``non-commercial``, the hub's ``license: other`` and a warning at the top of the text, so the
restriction travels with the weights.

Scalars are written as JSON, which is valid YAML: no value, whatever its characters, can break
the front matter.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Licence texts the hub knows by an identifier of its own; any other becomes ``license: other``.
HUB_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc0-1.0", "bsd-3-clause", "llama3", "gemma"}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _key(name: str) -> str:
    return name if _PLAIN_KEY.match(name) else json.dumps(name)


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block mappings for dicts, JSON for everything else (lists included: a flow sequence)."""
    pad = " " * indent
    lines = []
    for name, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{pad}{_key(str(name))}:")
            lines.extend(_yaml(item, indent + 2))
        else:
            lines.append(f"{pad}{_key(str(name))}: {json.dumps(item, ensure_ascii=False, default=str)}")
    return lines


def hub_license(text: str, commercial_use: bool | None) -> dict[str, str]:
    """The hub's ``license`` keys: the base's identifier when the hub knows it, else ``other`` with a name."""
    ident = (text or "").strip().lower()
    if commercial_use is False or ident not in HUB_LICENSES:
        name = re.sub(r"[^a-z0-9]+", "-", ident).strip("-") or "unknown"
        return {"license": "other", "license_name": name + ("-non-commercial-data" if commercial_use is False else "")}
    return {"license": ident}


def front_matter(facts: dict[str, Any]) -> dict[str, Any]:
    dataset = facts["dataset"]
    tags = ["llm-arena", facts["method"], facts["finetuning_type"]]
    if dataset["commercial_use"] is False:
        tags.append("non-commercial")
    return {
        "base_model": facts["base_model"]["name"],
        "library_name": "peft" if facts["format"] == "adapter" else "transformers",
        **hub_license(facts["base_model"]["license"], dataset["commercial_use"]),
        "pipeline_tag": "text-generation" if facts["kind"] == "contestant" else "text-classification",
        "tags": tags,
        "arena": {
            "name": facts["name"], "format": facts["format"], "method": facts["method"],
            "finetuning_type": facts["finetuning_type"], "lineage": facts["lineage"], "job": facts["job"],
            "dataset": dataset, "training": facts["config"], "final_metrics": facts["final_metrics"],
            "gate": facts["gate"], "rating": facts["rating"], "exported_at": facts["exported_at"],
        },
    }


def _usage_notice(dataset: dict[str, Any]) -> str:
    if dataset["commercial_use"] is False:
        return (f"> **Not for commercial use.** This model was trained on the dataset `{dataset['name']}` "
                f"(license: {dataset['license'] or 'not stated'}), which does not allow commercial use. "
                "Whatever the base model's license, these weights carry that restriction.\n")
    if dataset["commercial_use"] is None:
        return (f"> Commercial use of the dataset `{dataset['name']}` is not stated (license: "
                f"{dataset['license'] or 'not stated'}): check it before any commercial use.\n")
    return ""


def _gate_text(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "No gate run: the model met raters without an automatic comparison."
    if gate["status"] != "done" or gate["win_rate"] is None:
        return f"Gate {gate['status']}: {gate.get('reason') or 'no verdict'}."
    verdict = "passed" if gate["passed"] else "held back" if gate["held_back"] else "below the threshold"
    return (f"Against `{gate['opponent']}` on {gate['prompts']} held-out prompts, judged by {gate['judge']}: "
            f"win rate {gate['win_rate']:.2f} (95% interval {gate['ci_low']:.2f}–{gate['ci_high']:.2f}), {verdict}.")


def _rating_text(rating: dict[str, Any] | None) -> str:
    if not rating:
        return "Not rated: it had no counted votes on the overall board at export time."
    status = "**provisional** (too few votes or too wide an interval for a rank)" if rating["provisional"] else (
        f"rank {rating['rank']}")
    return (f"{rating['rating']:.0f} (95% interval {rating['ci_low']:.0f}–{rating['ci_high']:.0f}) from "
            f"{rating['votes']} counted votes, {status}, as of {rating['snapshot_at']}. Ratings move as votes arrive.")


def _how_to_load(facts: dict[str, Any]) -> str:
    if facts["format"] == "adapter":
        return ("```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n"
                f"base = AutoModelForCausalLM.from_pretrained(\"{facts['base_model']['name']}\")  # the base weights\n"
                "model = PeftModel.from_pretrained(base, \"THIS_FOLDER\")\n```\n"
                "vLLM: `vllm serve BASE --enable-lora --lora-modules name=THIS_FOLDER`.")
    return ("```python\nfrom transformers import AutoModelForCausalLM\n"
            "model = AutoModelForCausalLM.from_pretrained(\"THIS_FOLDER\")\n```\nvLLM: `vllm serve THIS_FOLDER`.")


def render_card(facts: dict[str, Any]) -> str:
    """The README.md text: front matter, then what a reader needs before using the weights."""
    dataset, config = facts["dataset"], facts["config"]
    what = {"adapter": "a LoRA adapter (load it on its base model)",
            "merged": "a merged model (the LoRA adapter folded into its base)",
            "full": "a fully fine-tuned model"}[facts["format"]]
    settings = ", ".join(f"`{k}={json.dumps(config[k])}`" for k in sorted(config) if config[k] not in (None, "", [], {}))
    body = [
        f"# {facts['name']}", "",
        f"{facts['method_label']} of `{facts['base_model']['name']}` on the dataset `{dataset['name']}`, exported from "
        f"the LLM arena on {facts['exported_at']} as {what}.", "",
        _usage_notice(dataset),
        "## Training", "",
        f"- Lineage: {' → '.join(facts['lineage'])}",
        f"- Base model: `{facts['base_model']['name']}` ({facts['base_model']['license'] or 'license not stated'})",
        f"- Dataset: `{dataset['name']}`, {dataset['rows']} rows, from {dataset['source']} "
        f"({dataset['source_ref'] or 'no reference'}); license: {dataset['license'] or 'not stated'}; "
        f"commercial use: {({True: 'allowed', False: 'not allowed', None: 'not stated'})[dataset['commercial_use']]}",
        f"- Job {facts['job']['id']}, preset `{facts['job']['preset'] or 'custom'}`, {facts['job']['steps']} steps",
        f"- Settings: {settings}", "",
        "## Gate", "", _gate_text(facts["gate"]), "",
        "## Arena rating at export", "", _rating_text(facts["rating"]), "",
        "## How to load", "", _how_to_load(facts), "",
    ]
    return "---\n" + "\n".join(_yaml(front_matter(facts))) + "\n---\n\n" + "\n".join(body)
