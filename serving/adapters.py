"""Adapters you can account for: content hashes, verification after a load, unloading what no longer battles.

A LoRA served model stores the SHA-256 of its adapter directory (``adapter_sha256``).
``adapter_verify`` checks the chain name → path → hash against the engine's
/v1/models (its ``root`` is the loaded path) and the directory on disk, so a
directory rewritten under the same name (which vLLM would serve from a stale
prefix cache, vllm-project/vllm#42125) is caught instead of answering battles.
``adapters_unload`` frees ``--max-loras`` slots of adapters that no longer battle.
"""

from __future__ import annotations

import logging
from pathlib import Path

from serving.adapter_hash import adapter_dir_sha256
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel
from serving.services import adapter_unload, endpoint_list_models

logger = logging.getLogger(__name__)

def adapter_verify(model: ServedModel, *, loaded: dict[str, dict] | None = None) -> str:
    """Check that the engine serves ``model``'s name from its path, and the directory still has its hash.

    ``loaded`` is the engine's /v1/models by id (fetched when omitted). A model without
    a stored hash gets the directory's (recorded once). Returns the hash; raises EngineError.
    """
    if loaded is None:
        loaded = {entry.get("id"): entry for entry in endpoint_list_models(model.endpoint)}
    entry = loaded.get(model.engine_model_id)
    if entry is None:
        raise EngineError(f"{model.public_name}: not loaded on {model.endpoint.name}")
    root = entry.get("root")
    if root and Path(root) != Path(model.adapter_path):
        raise EngineError(f"{model.public_name}: the engine serves it from {root}, not {model.adapter_path}")
    digest = adapter_dir_sha256(model.adapter_path)
    if not model.adapter_sha256:
        ServedModel.objects.filter(pk=model.pk).update(adapter_sha256=digest)
        model.adapter_sha256 = digest
    elif digest != model.adapter_sha256:
        raise EngineError(
            f"{model.public_name}: adapter directory changed since it was loaded (sha256 {digest[:12]}, "
            f"recorded {model.adapter_sha256[:12]}); register the new weights under a new name"
        )
    return digest


def adapters_verify(endpoint: Endpoint) -> dict[str, list[str]]:
    """Verify every active adapter of a vLLM endpoint; deactivate the ones that fail (called after reconciliation)."""
    report: dict[str, list[str]] = {"verified": [], "failed": []}
    try:
        loaded = {entry.get("id"): entry for entry in endpoint_list_models(endpoint)}
    except EngineError:
        return report  # the endpoint is down: health checking reports it
    for model in ServedModel.objects.filter(endpoint=endpoint, kind=ServedModel.Kind.LORA, active=True):
        try:
            adapter_verify(model, loaded=loaded)
            report["verified"].append(model.public_name)
        except EngineError as exc:
            logger.error("deactivating %s: %s", model.public_name, exc)
            ServedModel.objects.filter(pk=model.pk).update(active=False)
            report["failed"].append(f"{model.public_name}: {exc}")
    return report


def adapters_unload(endpoint: Endpoint, names: set[str]) -> list[str]:
    """Unload those of ``names`` that the engine has loaded, freeing their slots; returns the unloaded ones."""
    if not endpoint.supports_lora() or not names:
        return []
    try:
        loaded = {entry.get("id") for entry in endpoint_list_models(endpoint) if entry.get("parent")}
    except EngineError:
        return []
    unloaded = []
    for name in sorted(names & loaded):
        try:
            adapter_unload(endpoint, name=name)
            unloaded.append(name)
        except EngineError as exc:
            logger.warning("could not unload %s: %s", name, exc)
    return unloaded


def adapters_unload_inactive(endpoint: Endpoint) -> list[str]:
    """Unload the endpoint's paused (inactive) adapters that are still loaded."""
    names = set(ServedModel.objects.filter(endpoint=endpoint, kind=ServedModel.Kind.LORA, active=False)
                .values_list("engine_model_id", flat=True))
    return adapters_unload(endpoint, names)
