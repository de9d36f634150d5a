"""Play one battle against a running arena, as a new user would, for ``scripts/ci_fresh_clone.sh``.

    .venv/bin/python scripts/fresh_clone_battle.py --url http://127.0.0.1:PORT [--timeout S] [--pid PID]

Standard library and ``websockets`` only (no Django). Steps, each bounded by the one deadline:
1. wait until ``GET /`` answers 200 (stop early when ``--pid``, the ``make run``, has exited);
2. take a prompt suggestion from the page itself (its ``button.suggestion`` elements) and check
   that ``/api/prompts/suggestions`` offers some too;
3. over ``ws://…/ws/arena/`` (docs/battle-api.md): ``new_battle`` until two models are ready
   (``no_models`` until the engines load), ``prompt`` with the suggestion, wait for ``turn_done``
   with both sides ``done``, ``vote`` and wait for ``revealed``.
Prints one JSON line of timings on success; exits non-zero with the reason otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser

import websockets


class Failure(Exception):
    pass


class SuggestionParser(HTMLParser):
    """Collects the text of ``<button class="suggestion">`` elements (entities unescaped)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.suggestions: list[str] = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "button" and "suggestion" in classes:
            self._inside = True
            self.suggestions.append("")

    def handle_endtag(self, tag):
        if tag == "button":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.suggestions[-1] += data


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for_page(base: str, deadline: float, pid: int | None) -> str:
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not alive(pid):
            raise Failure(f"`make run` (pid {pid}) exited before the page answered ({last})")
        try:
            status, body = fetch(base + "/")
            if status == 200:
                return body
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(2)
    raise Failure(f"the page did not answer in time ({last})")


def pick_suggestion(base: str, page: str) -> str:
    parser = SuggestionParser()
    parser.feed(page)
    shown = [text.strip() for text in parser.suggestions if text.strip()]
    if not shown:
        raise Failure("the page shows no prompt suggestions")
    status, body = fetch(base + "/api/prompts/suggestions")
    offered = json.loads(body).get("prompts") if status == 200 else None
    if not offered:
        raise Failure(f"/api/prompts/suggestions offers none (HTTP {status}: {body[:200]})")
    return shown[0]


async def receive(ws, deadline: float) -> dict:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Failure("timed out waiting for the server")
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), left))
    except TimeoutError:
        raise Failure("timed out waiting for the server") from None


async def new_battle(ws, deadline: float) -> str:
    """Ask for a battle until the engines are ready (``no_models`` until then)."""
    while True:
        await ws.send(json.dumps({"type": "new_battle"}))
        frame = await receive(ws, deadline)
        if frame.get("type") == "battle":
            return frame["battle_id"]
        if frame.get("type") == "error" and frame.get("code") == "no_models":
            await asyncio.sleep(3)
            continue
        raise Failure(f"new_battle answered {frame}")


async def play(ws_url: str, prompt: str, deadline: float) -> dict:
    async with websockets.connect(ws_url, open_timeout=30, max_size=2**22) as ws:
        battle_id = await new_battle(ws, deadline)
        started = time.monotonic()
        await ws.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": prompt}))
        states: dict[str, str] = {}
        while True:
            frame = await receive(ws, deadline)
            kind = frame.get("type")
            if kind == "side_done":
                states[frame["side"]] = frame["state"]
                if frame["state"] != "done":
                    raise Failure(f"side {frame['side']} ended {frame['state']}: {frame.get('error')}")
            elif kind == "turn_done":
                break
            elif kind == "error":
                raise Failure(f"prompt refused: {frame}")
        if states != {"a": "done", "b": "done"}:
            raise Failure(f"turn_done before both sides were done: {states}")
        turn_s = time.monotonic() - started
        await ws.send(json.dumps({"type": "vote", "battle_id": battle_id, "winner": "model_a"}))
        while True:
            frame = await receive(ws, deadline)
            if frame.get("type") == "revealed":
                break
            if frame.get("type") == "error":
                raise Failure(f"vote refused: {frame}")
        return {"battle_id": battle_id, "turn_s": round(turn_s, 1),
                "models": [frame["model_a"]["name"], frame["model_b"]["name"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="root URL of the arena, e.g. http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for all the steps together")
    parser.add_argument("--pid", type=int, help="stop waiting when this process (the `make run`) exits")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    try:
        page = wait_for_page(base, deadline, args.pid)
        page_s = time.monotonic() - t0
        prompt = pick_suggestion(base, page)
        result = asyncio.run(play("ws" + base.removeprefix("http") + "/ws/arena/", prompt, deadline))
    except (Failure, OSError, websockets.WebSocketException) as exc:
        print(f"fresh_clone_battle: FAILED: {exc}", file=sys.stderr)
        return 1
    result.update(page_s=round(page_s, 1), battle_done_s=round(time.monotonic() - t0, 1), prompt=prompt[:80])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
