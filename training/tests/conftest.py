"""Fixtures of the training tests. Imports no Django at module level: test_formats.py runs
with ``-p no:django``."""

from types import SimpleNamespace

import pytest


class FakeCeleryApp:
    """A fake of the broker boundary, for tests about launching rather than running (the worker
    has its own tests in tests/test_training_loop.py): records the job ids ``training.services``
    sends as ``job_run_task``, each given the task id ``task_id``; with ``down = True`` sending
    fails as with an unreachable broker."""

    def __init__(self):
        self.sent: list[int] = []
        self.task_id = "t"
        self.down = False

    def send_task(self, name, args=(), **options):
        from training.services import JOB_RUN_TASK

        assert name == JOB_RUN_TASK, name
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append(args[0])
        return SimpleNamespace(id=self.task_id)


@pytest.fixture
def fake_training_queue(monkeypatch) -> FakeCeleryApp:
    from training import services

    app = FakeCeleryApp()
    monkeypatch.setattr(services, "current_app", app)
    return app
