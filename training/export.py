"""Taking a trained model out of the arena: its weights with a model card, on disk and on a model hub.

Contract:
* :func:`checkpoint_export` writes a checkpoint to a new or empty folder: a LoRA adapter as it
  was judged (its files must still have the hash recorded when it was served), or with
  ``merge`` the adapter folded into its base (``training.tools.merge_lora``, run in the engine
  environment, since the web and worker processes never import torch), or a full fine-tune's
  own weights. Each export gets a README.md model card (``training.export_card``) with the
  facts of :func:`export_facts`, read at export time.
* :func:`push_refusal` says why a push cannot happen (no token, no ``huggingface_hub`` in the
  engine environment, the hub unreachable) before any work is done; :func:`export_push`
  uploads a folder with ``training.tools.hub_push`` in the engine environment, the token in
  its environment only.
* Every refusal is a TrainingError with a message safe to show an admin; nothing is left under
  the destination's name when an export fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from arena.leaderboard.selectors import UnknownCategory, board_get, snapshot_latest
from arena.models import Contestant
from serving.adapter_hash import adapter_dir_sha256
from serving.errors import EngineError
from training.errors import TrainingError
from training.export_card import render_card
from training.models import Checkpoint

#: The longest a merge may take (a 135M model merges in seconds; a 7B one in minutes on a CPU).
MERGE_TIMEOUT_S = 3600
PUSH_TIMEOUT_S = 3600
#: Hub repository ids: ``owner/name``, each of letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    format: str  # adapter, merged or full
    files: list[str]


def held_back(checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint's contestant waits for an admin (sampling weight 0, not retired)."""
    model = checkpoint.served_model
    if model is None:
        return False
    contestant = Contestant.objects.filter(served_model=model).first()
    return contestant is not None and contestant.retired_at is None and contestant.sampling_weight == 0


def gate_facts(checkpoint: Checkpoint) -> dict | None:
    """The admitting gate run (the parent comparison; never the informational leader run), or None."""
    run = checkpoint.gate_runs.exclude(opponent_role="leader").select_related("opponent").order_by("-created_at").first()
    if run is None:
        return None
    return {"status": run.status, "opponent": run.opponent.public_name if run.opponent else None,
            "judge": f"{run.judge_kind} {run.judge_name}".strip() or None, "prompts": run.num_prompts,
            "wins": run.wins, "ties": run.ties, "losses": run.losses, "win_rate": run.win_rate,
            "ci_low": run.ci_low, "ci_high": run.ci_high, "passed": run.passed, "held_back": held_back(checkpoint),
            "reason": run.error or None}


def rating_facts(name: str) -> dict | None:
    """The model's row of the latest overall board (rating, interval, counted votes, provisional), or None."""
    snapshot = snapshot_latest()
    if snapshot is None:
        return None
    try:
        rows = (board_get(snapshot.data, "overall")["board"] or {}).get("rows", [])
    except (UnknownCategory, KeyError, TypeError):
        return None
    row = next((r for r in rows if r["model"] == name), None)
    if row is None:
        return None
    return {"rating": row["rating"], "ci_low": row["ci_low"], "ci_high": row["ci_high"], "votes": row["battles"],
            "provisional": bool(row.get("provisional", False)), "rank": row.get("rank"),
            "snapshot_at": snapshot.created_at.isoformat(timespec="seconds")}


def export_facts(checkpoint: Checkpoint, fmt: str) -> dict:
    """Everything the model card says, read now (plain values only)."""
    job, dataset, base = checkpoint.job, checkpoint.job.dataset, checkpoint.base_model
    name = checkpoint.served_model.public_name if checkpoint.served_model else job.contestant_name()
    return {
        "name": name, "format": fmt, "kind": checkpoint.kind, "method": job.method,
        "method_label": job.get_method_display(), "finetuning_type": checkpoint.finetuning_type,
        "base_model": {"name": base.public_name, "license": base.license, "organization": base.organization},
        "lineage": checkpoint.lineage(),
        "dataset": {"name": dataset.name, "kind": dataset.kind, "source": dataset.source,
                    "source_ref": dataset.source_ref, "license": dataset.license,
                    "commercial_use": dataset.commercial_use, "rows": dataset.row_count},
        "config": dict(job.config or {}),
        "final_metrics": dict(checkpoint.final_metrics or {}),
        "job": {"id": job.pk, "preset": job.preset, "steps": job.step,
                "finished_at": job.finished_at.isoformat(timespec="seconds") if job.finished_at else None},
        "gate": gate_facts(checkpoint),
        "rating": rating_facts(name) if checkpoint.served_model else None,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
    }


def _destination(to: Path) -> Path:
    to = Path(to).expanduser().resolve()
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise TrainingError(f"{to} exists and is not an empty folder: export to a new folder.")
    if not to.parent.is_dir():
        raise TrainingError(f"{to.parent} does not exist: create it first.")
    return to


def _check_weights(checkpoint: Checkpoint) -> Path:
    """The weights folder, unchanged since it was served (the hash recorded then), or TrainingError."""
    source = Path(checkpoint.weights_dir)
    if not source.is_dir():
        raise TrainingError(f"The weights of job {checkpoint.job_id} are gone: {source} does not exist.")
    recorded = checkpoint.adapter_sha256 or (checkpoint.served_model.adapter_sha256 if checkpoint.served_model else "")
    try:
        digest = adapter_dir_sha256(str(source))
    except EngineError as exc:
        raise TrainingError(str(exc)) from None
    if recorded and digest != recorded:
        raise TrainingError(f"The weights in {source} changed since they were served and judged (sha256 "
                            f"{digest[:12]}, recorded {recorded[:12]}): not exporting other weights under this name.")
    return source


def checkpoint_export(checkpoint: Checkpoint, to: Path, *, merge: bool = False) -> ExportResult:
    """Write the checkpoint's weights and its model card to ``to`` (new or empty); see the module contract."""
    if checkpoint.job.status != checkpoint.job.Status.SUCCEEDED:
        raise TrainingError(f"Job {checkpoint.job_id} did not succeed: there is nothing to export.")
    if merge and checkpoint.kind == Checkpoint.Kind.SCORER:
        raise TrainingError("A reward model is an adapter with a score head: export its adapter (without --merge).")
    to = _destination(to)
    source = _check_weights(checkpoint)
    fmt = "full" if checkpoint.is_full() else "merged" if merge else "adapter"
    staging = to.with_name(f".{to.name}.export-partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if fmt == "merged":
            _merge(checkpoint, source, staging)
        else:
            shutil.copytree(source, staging)
        (staging / "README.md").write_text(render_card(export_facts(checkpoint, fmt)), encoding="utf-8")
        if to.exists():
            to.rmdir()  # empty (checked above)
        staging.rename(to)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(folder=to, format=fmt, files=sorted(p.name for p in to.iterdir()))


def _merge(checkpoint: Checkpoint, adapter: Path, out: Path) -> None:
    endpoint = checkpoint.base_model.endpoint
    if not endpoint.model_dir:
        raise TrainingError(f"{checkpoint.base_model} has no weights directory on this server to merge into.")
    command = [settings.ARENA_ENGINE_PYTHON, "-m", "training.tools.merge_lora", "--base", endpoint.model_dir,
               "--adapter", str(adapter), "--out", str(out)]
    template = _chat_template_file(endpoint.chat_template)
    if template:
        command += ["--chat-template", str(template)]
    try:
        result = subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=MERGE_TIMEOUT_S,
                                env=_engine_env())
    except subprocess.TimeoutExpired:
        raise TrainingError(f"Merging the adapter of job {checkpoint.job_id} took over {MERGE_TIMEOUT_S} s.") from None
    except OSError as exc:
        raise TrainingError(f"The engine environment cannot run ({settings.ARENA_ENGINE_PYTHON}): {exc}") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise TrainingError(f"Merging the adapter failed: {lines[-1] if lines else 'no output'}")


def _chat_template_file(value: str) -> Path | None:
    """The endpoint's chat template as a file (the field holds a path, relative to the repository or absolute)."""
    if not value:
        return None
    path = Path(value) if Path(value).is_absolute() else settings.BASE_DIR / value
    return path if path.is_file() else None


def _engine_env(**extra: str) -> dict[str, str]:
    """The environment of an engine-environment tool: this one's, offline unless a push asks otherwise."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


# --- the hub ------------------------------------------------------------------

def _hub_reachable(url: str, timeout_s: float = 5.0) -> str:
    """"" when a TCP connection to the hub opens; else why not, in words."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except OSError as exc:
        return f"{host}:{port} cannot be reached from this server ({exc.__class__.__name__}: {exc})"


def push_refusal(repo: str) -> str:
    """Why ``repo`` cannot be pushed to now ("" when it can): checked before any export work."""
    if not _REPO_ID.match(repo) or ".." in repo:
        return f"{repo[:100]!r} is not a hub repository id (owner/name)."
    if not settings.HF_TOKEN:
        return "No model hub token: set HF_TOKEN (or HF_TOKEN_FILE) to push. Nothing was pushed."
    try:
        probe = subprocess.run([settings.ARENA_ENGINE_PYTHON, "-c", "import huggingface_hub"], capture_output=True,
                               env=_engine_env(), timeout=120, check=False).returncode
    except (OSError, subprocess.TimeoutExpired):
        probe = -1
    if probe != 0:
        return "The engine environment has no huggingface_hub to push with. Nothing was pushed."
    unreachable = _hub_reachable(settings.HF_ENDPOINT)
    if unreachable:
        return f"The model hub is unreachable: {unreachable}. No network, so nothing was pushed."
    return ""


def export_push(folder: Path, repo: str) -> str:
    """Upload an exported folder to ``repo`` (private when created); returns the commit URL. Raises TrainingError."""
    refusal = push_refusal(repo)
    if refusal:
        raise TrainingError(refusal)
    command = [settings.ARENA_ENGINE_PYTHON, "-m", "training.tools.hub_push", str(folder), repo]
    env = _engine_env(HF_TOKEN=settings.HF_TOKEN, HF_ENDPOINT=settings.HF_ENDPOINT)
    env.pop("HF_HUB_OFFLINE")
    try:
        result = subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=PUSH_TIMEOUT_S,
                                env=env)
    except subprocess.TimeoutExpired:
        raise TrainingError(f"Pushing to {repo} took over {PUSH_TIMEOUT_S} s.") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise TrainingError(f"The hub refused the push to {repo}: {lines[-1] if lines else 'no output'}")
    return result.stdout.strip()
