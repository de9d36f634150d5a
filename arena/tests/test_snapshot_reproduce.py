"""A stored board says how to reproduce it, and compute_ratings on its exported votes does, exactly."""

from __future__ import annotations

import io
import json
import random

import pytest
from django.core.management import call_command

from arena.battle_files.arrays import arrays_votes_hash, read_battle_arrays
from arena.battle_files.parse import votes_hash
from arena.leaderboard import presentation as leaderboard_presentation
from arena.leaderboard import selectors as leaderboard_selectors
from arena.leaderboard import services as leaderboard_services
from tests.factories import make_model, make_vote


def test_votes_hash_is_the_vote_multiset():
    rows = [("a", "b", "tie", 2), ("b", "a", "model_a", 1)]
    same = [("b", "a", "model_a", 1), ("a", "b", "tie", 1), ("a", "b", "tie", 1), ("c", "a", "tie", 0)]
    assert votes_hash(rows) == votes_hash(same)
    assert votes_hash(rows) != votes_hash([("a", "b", "tie", 2), ("a", "b", "model_b", 1)])  # the side shown counts


@pytest.mark.django_db
@pytest.mark.parametrize("config", [
    {"ARENA_LEADERBOARD_ROUNDS": 25},
    {"ARENA_LEADERBOARD_CI": "sandwich", "ARENA_LEADERBOARD_REWEIGHTED": True, "ARENA_LEADERBOARD_MIN_PAIR_COUNT": 3,
     "ARENA_LEADERBOARD_ANCHOR": ("bee", 1200.0)},
    {"ARENA_LEADERBOARD_TIES": "davidson", "ARENA_LEADERBOARD_CI": "sandwich", "ARENA_LEADERBOARD_PRIOR_SD": 150.0,
     "ARENA_LEADERBOARD_PROVISIONAL_VOTES": 40},
    {"ARENA_LEADERBOARD_TIES": "rao-kupper", "ARENA_LEADERBOARD_ROUNDS": 10},
])
def test_compute_ratings_on_a_snapshots_exported_votes_reproduces_its_board(db, settings, tmp_path, config):
    for key, value in config.items():
        setattr(settings, key, value)
    models = [make_model(public_name=name) for name in ("ant", "bee", "cat", "dog")]
    rng = random.Random(4)
    for k in range(90):
        a, b = rng.sample(models, 2)
        make_vote(a, b, rng.choice(["model_a", "model_a", "model_b", "tie", "tie (bothbad)"]),
             mode="named" if k % 17 == 0 else "anony", identity_leak=k % 23 == 0)
    snapshot = leaderboard_services.snapshot_create()
    make_vote(models[0], models[1], "model_a")  # after the snapshot: not part of it
    recorded = snapshot.data["reproduce"]
    assert recorded["code_version"] and snapshot.data["settings"]["ci"] == settings.ARENA_LEADERBOARD_CI
    path = tmp_path / "snapshot.jsonl"
    call_command("export_battles", str(path), "--snapshot", str(snapshot.pk), stdout=io.StringIO())
    assert arrays_votes_hash(read_battle_arrays(path)) == recorded["votes_sha256"]
    out = io.StringIO()
    call_command("compute_ratings", str(path), *recorded["compute_ratings_args"], stdout=out)
    mine = {row["model"]: row for row in json.loads(out.getvalue())}
    board = leaderboard_selectors.board_get(snapshot.data, "overall")["board"]
    assert len(mine) == len(board["rows"]) == 4
    for row in board["rows"]:
        got = mine[row["model"]]
        assert [got[k] for k in ("rating", "ci_low", "ci_high", "rank", "battles")] == [
            row[k] for k in ("rating", "ci_low", "ci_high", "rank", "battles")]  # exactly
        assert got["elo"] == pytest.approx(row["elo"], abs=1e-9)
    payload = leaderboard_presentation.board_payload(snapshot)
    assert payload["snapshot"]["reproduce"] == recorded
