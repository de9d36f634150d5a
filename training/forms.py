"""Admin forms: they parse input and call one service, whose TrainingError becomes form errors."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from serving.models import ServedModel
from training import formats, services
from training.builtin import BUILTIN_DATASETS
from training.models import Checkpoint, Dataset, Job
from training.recipes.config import PRESETS


def _as_validation_error(exc: services.TrainingError) -> ValidationError:
    return ValidationError([exc.message, *exc.problems[:50]])


class DatasetImportForm(forms.ModelForm):
    SOURCES = [
        ("upload", "Upload a JSON Lines file (gzip accepted)"),
        ("builtin", "Built-in real dataset (shared data)"),
        ("path", "A file on the server"),
        ("hub", "Hugging Face hub dataset id"),
        ("arena", "This arena's votes (preference pairs)"),
    ]
    import_from = forms.ChoiceField(choices=SOURCES, initial="upload")
    data_format = forms.ChoiceField(choices=[(f, f) for f in formats.FORMATS], required=False,
                                    help_text="How the rows are written (not needed for built-in or arena data)")
    upload = forms.FileField(required=False)
    builtin = forms.ChoiceField(choices=[("", "—")] + [(b.name, f"{b.name} ({b.license})") for b in BUILTIN_DATASETS],
                                required=False)
    server_path = forms.CharField(required=False)
    hub_id = forms.CharField(required=False)

    class Meta:
        model = Dataset
        fields = ["name", "license", "description"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["name"].required = False
        self.fields["name"].help_text = "A slug; built-in datasets default to their own name"

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        source, name, fmt = data["import_from"], data.get("name") or "", data.get("data_format") or ""
        common = {"created_by": self.user}
        try:
            with transaction.atomic():
                if source == "builtin":
                    if not data.get("builtin"):
                        raise ValidationError("Pick a built-in dataset.")
                    self.instance = services.dataset_from_builtin(data["builtin"], name=name or None, **common)
                elif source == "arena":
                    self.instance = services.dataset_from_arena_votes(name=name or "arena-votes", **common)
                else:
                    if not name:
                        raise ValidationError("Give the dataset a name.")
                    if not fmt:
                        raise ValidationError("Say which format the rows are in.")
                    extra = {"license": data.get("license", ""), "description": data.get("description", "")}
                    if source == "upload":
                        upload = data.get("upload")
                        if not upload:
                            raise ValidationError("Choose a file to upload.")
                        self.instance = services.dataset_import(name=name, data=upload, fmt=fmt,
                                                                source_ref=upload.name, **extra, **common)
                    elif source == "path":
                        self.instance = services.dataset_from_path(data.get("server_path", ""), name=name, fmt=fmt,
                                                                   **extra, **common)
                    else:
                        self.instance = services.dataset_from_hub(data.get("hub_id", ""), name=name, fmt=fmt, **common)
        except services.TrainingError as exc:
            raise _as_validation_error(exc) from None
        return data

    def save(self, commit=True):
        self.save_m2m = lambda: None  # the admin calls it; there is nothing many-to-many
        return self.instance  # the service stored it in clean()


class JobLaunchForm(forms.ModelForm):
    preset = forms.ChoiceField(choices=[("", "— defaults —")] + sorted(
        {(name, name) for presets in PRESETS.values() for name in presets}), required=False, initial="cpu-smoke")
    overrides = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), required=False,
        help_text="Your own hyperparameters, one key=value per line (e.g. learning_rate=1e-4, max_steps=20)",
    )

    class Meta:
        model = Job
        fields = ["base_model", "method", "dataset", "preset", "init_checkpoint"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["base_model"].queryset = ServedModel.objects.filter(kind=ServedModel.Kind.BASE, active=True)
        self.fields["init_checkpoint"].queryset = Checkpoint.objects.all()
        self.fields["init_checkpoint"].help_text = "Optional: continue this adapter (e.g. DPO after an SFT)"

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        overrides = [line.strip() for line in (data.get("overrides") or "").splitlines() if line.strip()]
        try:
            with transaction.atomic():
                self.instance = services.job_launch(
                    base_model=data["base_model"], method=data["method"], dataset=data["dataset"],
                    preset_name=data.get("preset") or "", overrides=overrides, created_by=self.user,
                    init_checkpoint=data.get("init_checkpoint"),
                )
        except services.TrainingError as exc:
            raise _as_validation_error(exc) from None
        return data

    def save(self, commit=True):
        self.save_m2m = lambda: None
        return self.instance  # job_launch stored it in clean()
