"""Datasets, fine-tuning jobs and the checkpoints they produce."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from serving.models import ServedModel
from training.recipes.config import CONFIG_CLASSES


class PreviewStatus(models.TextChoices):
    NONE = "", "Not computed"
    COMPUTING = "computing", "Computing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Dataset(models.Model):
    """A named, validated set of rows, stored normalised as JSON Lines under ARENA_DATA_DIR/datasets."""

    class Kind(models.TextChoices):
        SFT = "sft", "SFT (conversations)"
        PREFERENCE = "preference", "Preference pairs"
        UNPAIRED = "unpaired", "Unpaired feedback (KTO)"
        PROMPT = "prompt", "Prompts (online RL)"
        TEXT = "text", "Raw text (pretraining)"

    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded file"
        PATH = "path", "Path on the server"
        HUB = "hub", "Hugging Face hub"
        ARENA = "arena", "Arena votes"
        BUILTIN = "builtin", "Built-in (shared data)"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    format = models.CharField(max_length=32, help_text="The format the rows came in")
    source = models.CharField(max_length=16, choices=Source.choices)
    source_ref = models.CharField(max_length=500, blank=True, help_text="File name, path or hub id")
    license = models.CharField(max_length=200, blank=True)
    commercial_use = models.BooleanField(null=True, blank=True)
    description = models.TextField(blank=True)
    row_count = models.PositiveIntegerField(default=0)
    # A lenient import (--skip-invalid) stores the valid rows and records every row it left out.
    skipped_count = models.PositiveIntegerField(default=0, help_text="Invalid rows left out on import")
    skipped_rows = models.JSONField(default=list, blank=True, help_text='[{"line": n, "reason": "..."}]')
    file = models.CharField(max_length=500, help_text="Normalised JSON Lines")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    # The preview (``training.previews``): rows as the recipe sees them, token lengths, what each
    # preset's max_length would cut or drop; computed by the worker with one base model's tokenizer.
    preview_status = models.CharField(max_length=12, choices=PreviewStatus.choices, blank=True, default="")
    preview_base = models.ForeignKey(ServedModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     help_text="The base model whose tokenizer and chat template the preview used")
    preview = models.JSONField(default=dict, blank=True)
    preview_error = models.TextField(blank=True)
    preview_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JobQuerySet(models.QuerySet):
    def comparable_to(self, job: Job, limit: int = 5) -> JobQuerySet:
        """Other runs of the same method on the same dataset or base model, newest first, with logged steps."""
        return (self.filter(models.Q(dataset_id=job.dataset_id) | models.Q(base_model_id=job.base_model_id),
                            method=job.method)
                .exclude(pk=job.pk).exclude(metrics=[]).select_related("dataset", "base_model")
                .order_by("-created_at")[:limit])


class Job(models.Model):
    # One choice per config class of the one list (training.recipes.config.CONFIG_CLASSES):
    # Job.Method.SFT == "sft", labelled with the class's ``label``.
    Method = models.TextChoices(
        "Method", [(method.upper(), (method, cls.label)) for method, cls in CONFIG_CLASSES.items()]
    )

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    base_model = models.ForeignKey(ServedModel, on_delete=models.PROTECT, related_name="training_jobs",
                                   limit_choices_to={"kind": ServedModel.Kind.BASE})
    method = models.CharField(max_length=8, choices=Method.choices)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    preset = models.CharField(max_length=64, blank=True)
    config = models.JSONField(help_text="The full recipe configuration (training.recipes.config)")
    # Continue training another job's adapter (SFT → DPO lineage).
    init_checkpoint = models.ForeignKey("Checkpoint", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="child_jobs")
    # Online RL (GRPO): the reward model (a scorer checkpoint) the policy is trained against.
    reward_model = models.ForeignKey("Checkpoint", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="rl_jobs", limit_choices_to={"kind": "scorer"})

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=list, blank=True, help_text="One entry per logged step")
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)

    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Job {self.pk}: {self.method} {self.base_model} on {self.dataset}"

    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    def directory(self) -> Path:
        # The creation time keeps two databases (a test run, a dev server) from sharing job-1's folder.
        return settings.ARENA_TRAINING_DIR / f"job-{self.pk}-{self.created_at:%Y%m%d-%H%M%S-%f}"

    def elapsed_s(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()

    def remaining_s(self) -> float | None:
        elapsed = self.elapsed_s()
        if self.is_finished() or not elapsed or not self.step or not self.total_steps:
            return None
        return elapsed / self.step * max(0, self.total_steps - self.step)

    def contestant_name(self) -> str:
        """Immutable and versioned: vLLM keys its prefix cache by adapter name, so names are never reused."""
        return f"{self.base_model.public_name}-{self.method}-j{self.pk}"


class Checkpoint(models.Model):
    """A trained LoRA adapter or a fully fine-tuned model (``finetuning_type``), with its lineage
    and, once served, its contestant; or a reward model (kind scorer: never served, it scores text
    pairs and judges the gate)."""

    class Kind(models.TextChoices):
        CONTESTANT = "contestant", "Contestant (served in the arena)"
        SCORER = "scorer", "Scorer (reward model)"

    class FinetuningType(models.TextChoices):
        LORA = "lora", "LoRA adapter"
        FULL = "full", "Full model"

    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="checkpoint")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CONTESTANT)
    finetuning_type = models.CharField(max_length=8, choices=FinetuningType.choices, default=FinetuningType.LORA,
                                       help_text="What weights_dir holds: a LoRA adapter or a whole model")
    weights_dir = models.CharField(max_length=500, help_text="The adapter directory, or the full model's directory")
    adapter_sha256 = models.CharField(max_length=64, blank=True, help_text="Content hash of the adapter directory")
    base_model = models.ForeignKey(ServedModel, on_delete=models.PROTECT, related_name="checkpoints")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    final_metrics = models.JSONField(default=dict, blank=True)
    served_model = models.OneToOneField(ServedModel, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="checkpoint")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.served_model.public_name if self.served_model else f"checkpoint of job {self.job_id}"

    def lineage(self) -> list[str]:
        """Base → … → this, e.g. ["smollm2-135m-instruct", "sft j3", "grpo j9 (reward j5)"]."""
        chain, node = [], self
        while node is not None:
            job = node.job
            step = f"{job.method} j{job.pk}" + (" full" if node.is_full() else "")
            if job.reward_model_id:
                step += f" (reward j{job.reward_model.job_id})"
            chain.append(step)
            node = node.parent
        return [self.base_model.public_name, *reversed(chain)]

    def is_full(self) -> bool:
        return self.finetuning_type == self.FinetuningType.FULL

    def heldout_accuracy(self) -> float | None:
        """A scorer's accuracy on the held-out slice of its preference data (chosen above rejected)."""
        return (self.final_metrics or {}).get("heldout_accuracy")


class GateRun(models.Model):
    """One automatic pairwise evaluation of a new contestant against another model (its parent, or
    the leader) on held-out arena prompts, before human votes are spent on it (``training.gate``)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class Judge(models.TextChoices):
        REWARD = "reward", "Reward model"
        LLM = "llm", "LLM judge"

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="gate_runs")
    opponent = models.ForeignKey(ServedModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    opponent_role = models.CharField(max_length=16, default="parent", help_text="parent or leader")
    judge_kind = models.CharField(max_length=8, choices=Judge.choices, blank=True)
    judge_name = models.CharField(max_length=200, blank=True)
    num_prompts = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    # one per prompt: {"prompt", "new", "old", "games": [verdicts in both orders], "score": 1 | 0.5 | 0 | null}
    verdicts = models.JSONField(default=list, blank=True)
    wins = models.PositiveIntegerField(default=0)
    ties = models.PositiveIntegerField(default=0)
    losses = models.PositiveIntegerField(default=0)
    win_rate = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True, help_text="win rate at or above the threshold")
    wall_s = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"gate of {self.checkpoint} vs {self.opponent} ({self.status})"


class SavedConfiguration(models.Model):
    """A named set of launch settings (a method, a preset and ``key=value`` overrides), offered on the
    launch form beside the presets. Checked like a launch when saved (``training.repeat``)."""

    name = models.CharField(max_length=100, unique=True)
    method = models.CharField(max_length=8, choices=Job.Method.choices)
    preset = models.CharField(max_length=64, blank=True)
    overrides = models.JSONField(default=list, blank=True, help_text='["key=value", ...] applied to the preset')
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelExport(models.Model):
    """An export of a checkpoint asked for in the admin and written by a training worker, where the
    weights are (``training.export_queue``); ``folder`` is a path on that worker's machine."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="exports")
    merge = models.BooleanField(default=False, help_text="the adapter folded into its base")
    folder = models.CharField(max_length=500)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    format = models.CharField(max_length=8, blank=True, help_text="adapter, merged or full, once written")
    files = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export of {self.checkpoint} to {self.folder} ({self.status})"
