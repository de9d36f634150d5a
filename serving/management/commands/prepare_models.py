import json
import subprocess

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from serving.local_models import enabled_local_models


class Command(BaseCommand):
    help = "Convert the GGUF models shipped on PyPI into safetensors directories vLLM can serve (idempotent)."

    def handle(self, *args, **options):
        script = settings.BASE_DIR / "serving" / "tools" / "convert_gguf.py"
        for local in enabled_local_models():
            command = [settings.ARENA_ENGINE_PYTHON, str(script), "--out", str(settings.ARENA_MODELS_DIR), "--only", local.key]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise CommandError(f"converting {local.key} failed:\n{result.stderr[-3000:]}")
            try:
                (entry,) = json.loads(result.stdout)["models"]
            except (ValueError, KeyError) as exc:
                raise CommandError(f"converting {local.key}: unexpected output ({exc}):\n{result.stdout[-2000:]}") from None
            detail = entry.get("reason") or entry.get("status")
            self.stdout.write(f"{local.key}: {entry['path']} ({detail})")
        self.stdout.write(json.dumps({"models_dir": str(settings.ARENA_MODELS_DIR)}))
