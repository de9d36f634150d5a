"""``manage.py run_engines``: the engine supervisor alone, in the foreground (``serving.supervisor``).

For deployments whose engines run on a machine of their own (next to its GPUs): it starts the
engines of the managed endpoints that should run, restarts dead ones and stops unwanted ones, until
SIGINT/SIGTERM, then stops every engine it started. `make run` runs the same supervisor itself.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from serving.supervisor import EngineSupervisor


class Command(BaseCommand):
    help = "Run the vLLM engines of the managed endpoints until Ctrl-C/SIGTERM (one per database)."

    def add_arguments(self, parser):
        parser.add_argument("--poll", type=float, default=2.0, help="Seconds between two reconciliations.")

    def handle(self, *args, **options):
        stopping = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        supervisor = EngineSupervisor(say=lambda text: self.stdout.write(text))
        self.stdout.write(f"Engine supervisor: at most {supervisor.max_engines or 'any number of'} engines; "
                          "Ctrl-C stops them all.")
        supervisor.run(stopping, poll_s=options["poll"])
        self.stdout.write("Engines stopped.")
