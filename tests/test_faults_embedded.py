"""Fault of the embedded mode (SQLite: one write lock for every process): an admin imports a dataset
from a slow hub download while raters vote. No long work may run inside a write transaction, so
every vote completes and none sees "database is locked".

The hub download is a FAKE at the process boundary: ``ARENA_ENGINE_PYTHON`` points at a script that
takes longer than SQLite's lock timeout (20 s), then writes real rows where the exporter would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import websockets
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

from arena.models import Vote
from training.models import Dataset

pytestmark = [pytest.mark.faults, pytest.mark.vllm, pytest.mark.django_db(transaction=True)]

SLOW_S = 25  # longer than the SQLite busy timeout (config.settings: 20 s)

FAKE_HUB_EXPORTER = f"""#!/bin/sh
# FAKE hub exporter (a slow download): called as ARENA_ENGINE_PYTHON -m training.tools.hub_export ID --split S --out FILE
sleep {SLOW_S}
while [ $# -gt 0 ]; do [ "$1" = "--out" ] && out="$2"; shift; done
printf '%s\\n' '{json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})}' > "$out"
"""


async def rater_votes(url: str, until: float) -> dict:
    """Battles with votes, back to back, until ``until``; counts acknowledged votes and error frames."""
    seen = {"voted": 0, "errors": []}
    async with websockets.connect(url) as socket:
        async def recv() -> dict:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 90))
            if frame["type"] == "error":
                seen["errors"].append(frame)
            return frame

        while time.monotonic() < until:
            await socket.send(json.dumps({"type": "new_battle"}))
            battle_id = (await recv())["battle_id"]
            await socket.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": "Hi!"}))
            while (await recv())["type"] not in ("turn_done", "error"):
                pass
            await socket.send(json.dumps({"type": "vote", "battle_id": battle_id, "winner": "tie"}))
            if (await recv())["type"] == "revealed":
                seen["voted"] += 1
    return seen


def test_votes_complete_while_an_admin_imports_from_a_slow_hub(asgi_server, battle_models, settings, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the one-write-lock fault is the embedded mode's (SQLite); this run uses " + connection.vendor)
    exporter = tmp_path / "fake-hub-python"
    exporter.write_text(FAKE_HUB_EXPORTER)
    exporter.chmod(0o755)
    settings.ARENA_ENGINE_PYTHON = str(exporter)
    settings.ARENA_DATA_DIR = tmp_path
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
    answer = {}

    def import_from_hub() -> None:
        answer["response"] = admin.post(reverse("admin:training_dataset_add"), {
            "import_from": "hub", "hub_id": "someone/slow-data", "name": "slow-data", "data_format": "messages"})
        connection.close()

    importer = threading.Thread(target=import_from_hub)
    started = time.monotonic()
    importer.start()
    url = asgi_server.replace("http://", "ws://") + "/ws/arena/"

    async def raters() -> list[dict]:
        return await asyncio.gather(*(rater_votes(url, started + SLOW_S - 3) for _ in range(3)))

    seen = asyncio.run(raters())
    importer.join(120)
    assert answer["response"].status_code == 302, answer["response"].content[:2000]
    assert Dataset.objects.get(name="slow-data").row_count == 1
    assert [frame for rater in seen for frame in rater["errors"]] == []
    voted = sum(rater["voted"] for rater in seen)
    assert voted >= 3 and Vote.objects.count() == voted
