"""Admin forms. They only validate what was typed and write nothing: the admin then calls the
service (``training.admin``), whose TrainingError it shows on the form, input kept."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from serving.models import ServedModel
from training import formats
from training.builtin import BUILTIN_DATASETS
from training.errors import TrainingError
from training.models import Checkpoint, Dataset, Job, SavedConfiguration
from training.recipes.backends import gpu_note
from training.recipes.config import PRESETS, parse_override
from training.repeat import SAVED_PREFIX, saved_configuration_choices, saved_configuration_expand
from training.services import job_config

#: Launch-form choices that become overrides: (field, default).
_CHOICE_OVERRIDES = (("finetuning_type", "lora"), ("backend", "trl"), ("deepspeed", "none"))


class DatasetImportForm(forms.ModelForm):
    SOURCES = [
        ("upload", "Upload a JSON Lines file (gzip accepted)"),
        ("builtin", "Built-in real dataset (shipped in data/)"),
        ("path", "A file on the server"),
        ("hub", "Hugging Face hub dataset id"),
        ("arena", "This arena's votes (preference pairs)"),
        ("arena-kto", "This arena's votes, unpaired for KTO (ties and both-bad kept)"),
        ("arena-prompts", "The arena's arena-hard prompts (for GRPO)"),
    ]
    import_from = forms.ChoiceField(choices=SOURCES, initial="upload")
    data_format = forms.ChoiceField(choices=[(f, f) for f in formats.FORMATS], required=False,
                                    help_text="How the rows are written (not needed for built-in or arena data)")
    upload = forms.FileField(required=False)
    builtin = forms.ChoiceField(choices=[("", "—")] + [(b.name, f"{b.name} ({b.license})") for b in BUILTIN_DATASETS],
                                required=False)
    server_path = forms.CharField(required=False)
    hub_id = forms.CharField(required=False)
    skip_invalid = forms.BooleanField(
        required=False, label="Skip invalid rows",
        help_text="Store the valid rows and list each skipped line with its reason (default: refuse the whole file)")

    class Meta:
        model = Dataset
        fields = ["name", "license", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["name"].help_text = "A slug; built-in datasets default to their own name"

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        source = data["import_from"]
        if source == "builtin" and not data.get("builtin"):
            raise ValidationError("Pick a built-in dataset.")
        if source in ("upload", "path", "hub"):
            if not data.get("name"):
                raise ValidationError("Give the dataset a name.")
            if not data.get("data_format"):
                raise ValidationError("Say which format the rows are in.")
            if source == "upload" and not data.get("upload"):
                raise ValidationError("Choose a file to upload.")
        return data


def _preset_choices() -> list:
    """The presets every method has, then, grouped, those only some methods have ("GRPO only"), so a
    preset's method shows before launching (a wrong pair is still refused by ``job_config``)."""
    every = set.intersection(*(set(presets) for presets in PRESETS.values()))
    only: dict[tuple[str, ...], list[str]] = {}
    for name in sorted({name for presets in PRESETS.values() for name in presets} - every):
        methods = tuple(method for method, presets in PRESETS.items() if name in presets)
        only.setdefault(methods, []).append(name)
    return [("", "— defaults —"), *((name, name) for name in sorted(every)),
            *((f"{', '.join(m.upper() for m in methods)} only", [(name, name) for name in names])
              for methods, names in only.items())]


_PRESET_CHOICES = _preset_choices()


class JobLaunchForm(forms.ModelForm):
    preset = forms.ChoiceField(choices=_PRESET_CHOICES, required=False, initial="cpu-smoke")
    finetuning_type = forms.ChoiceField(
        label="Fine-tuning", initial="lora", required=False, widget=forms.RadioSelect, choices=[
            ("lora", "LoRA adapter: hot-loaded into the base model's engine within seconds (default)"),
            ("full", "Full fine-tune: every weight trains (small bases; lower the learning rate); "
                     "the model gets an engine of its own"),
        ])
    backend = forms.ChoiceField(
        label="Training backend", initial="trl", required=False, choices=[
            ("trl", "TRL + PEFT (CPU or GPU; default)"),
            ("unsloth", "Unsloth FastLanguageModel (SFT/DPO, LoRA or QLoRA; CUDA GPU only)"),
        ])
    deepspeed = forms.ChoiceField(
        label="DeepSpeed (full fine-tunes)", initial="none", required=False, choices=[
            ("none", "None"), ("zero2", "ZeRO stage 2 (optimizer state and gradients sharded; CUDA GPUs only)"),
            ("zero3", "ZeRO stage 3 (parameters sharded too; CUDA GPUs only)"),
        ])
    overrides = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), required=False,
        help_text="Your own hyperparameters, one key=value per line (e.g. learning_rate=1e-4, max_steps=20)",
    )

    class Meta:
        model = Job
        fields = ["base_model", "method", "dataset", "preset", "init_checkpoint", "reward_model"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].queryset = ServedModel.objects.filter(kind=ServedModel.Kind.BASE, active=True)
        self.fields["init_checkpoint"].queryset = Checkpoint.objects.filter(kind=Checkpoint.Kind.CONTESTANT)
        self.fields["init_checkpoint"].help_text = "Optional: continue this adapter (e.g. DPO after an SFT)"
        self.fields["reward_model"].queryset = Checkpoint.objects.filter(kind=Checkpoint.Kind.SCORER)
        self.fields["reward_model"].help_text = "GRPO only: the trained reward model the policy learns against"
        saved = saved_configuration_choices()
        if saved:  # the saved configurations, selectable beside the presets
            self.fields["preset"].choices = [*self.fields["preset"].choices, ("Saved configurations", saved)]
        self.fields["preset"].help_text = ("A preset, or a saved configuration: its preset and settings, then what you "
                                           "type below (Training › Saved configurations lists their settings)")
        note = gpu_note(settings.ARENA_TRAINING_DEVICE)
        self.fields["backend"].help_text = note
        self.fields["deepspeed"].help_text = f"With Fine-tuning: full. {note}"

    def clean_overrides(self) -> list[str]:
        """One ``key=value`` per line, blank lines dropped; the values are checked by ``job_launch``."""
        return [line.strip() for line in (self.cleaned_data.get("overrides") or "").splitlines() if line.strip()]

    def clean(self):
        """The Fine-tuning, backend and DeepSpeed choices become overrides; typed a second time with
        another value, the form says so rather than let one silently win."""
        data = super().clean()
        overrides = data.get("overrides")
        if overrides is None:
            return data
        typed: dict[str, list[str]] = {}
        for line in overrides:
            try:
                key, value = parse_override(line)
            except ValueError:
                continue  # job_launch names the malformed line
            typed.setdefault(key, []).append(value)
        added = []
        for name, default in _CHOICE_OVERRIDES:
            chosen = data.get(name) or default
            values = typed.get(name, [])
            if any(value != chosen for value in values):
                label = {"finetuning_type": "Fine-tuning"}.get(name, name)
                raise ValidationError(f"{label} is {chosen} above but {name}={values[-1]} below: set it once.")
            if chosen != default and not values:
                added.append(f"{name}={chosen}")
        data["overrides"] = [*overrides, *added]
        if (data.get("preset") or "").startswith(SAVED_PREFIX) and data.get("method"):
            try:
                data["preset"], saved = saved_configuration_expand(data["preset"], data["method"])
            except TrainingError as exc:
                raise ValidationError(exc.message) from None
            data["overrides"] = [*saved, *data["overrides"]]
        return data


class SavedConfigurationForm(forms.ModelForm):
    """A named configuration, checked exactly as a launch checks its settings (every problem listed)."""

    preset = forms.ChoiceField(choices=_PRESET_CHOICES, required=False)
    overrides = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}), required=False,
        help_text="One key=value per line, applied to the preset (e.g. learning_rate=1e-4, max_steps=20)")

    class Meta:
        model = SavedConfiguration
        fields = ["name", "method", "preset", "overrides", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["overrides"] = "\n".join(self.instance.overrides or [])

    def clean_overrides(self) -> list[str]:
        return [line.strip() for line in (self.cleaned_data.get("overrides") or "").splitlines() if line.strip()]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            job_config(data["method"], data.get("preset") or "", data["overrides"])
        except TrainingError as exc:
            raise ValidationError([exc.message, *exc.problems]) from None
        self.instance.overrides = data["overrides"]
        return data
