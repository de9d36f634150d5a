"""export_battles / import_battles: FastChat-schema battle files out of and into the arena."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json

import pytest
from django.core.management import CommandError, call_command

from arena.battle_files import transfer as battle_io
from arena.leaderboard import selectors as leaderboard_selectors
from arena.leaderboard import services as leaderboard_services
from arena.models import Battle, Vote
from arena.pairing.contestants import contestant_of, contestants_battle_ready
from serving.models import Endpoint, ServedModel
from tests.factories import make_model, make_vote


def export(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("export_battles", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "tstamp"} | {"tstamp": round(record["tstamp"], 6)}


@pytest.fixture
def arena_votes(db):
    ant, bee = make_model(public_name="ant"), make_model(public_name="bee")
    make_vote(ant, bee, "model_a", language="en", turns=1, rater_id="session-123", mode=Battle.Mode.NAMED)
    make_vote(bee, ant, "tie (bothbad)", language="zh-cn", turns=2, style={})
    make_vote(ant, bee, "model_b", identity_leak=True)
    return ant, bee


@pytest.mark.django_db
class TestExport:
    def test_it_writes_fastchat_battles_oldest_first_without_flagged_votes(self, arena_votes):
        records = export()
        assert [(r["model_a"], r["model_b"], r["winner"]) for r in records] == [
            ("ant", "bee", "model_a"), ("bee", "ant", "tie (bothbad)")]
        first, second = records
        assert set(first) >= {"model_a", "model_b", "winner", "tstamp", "judge", "turn", "anony", "language",
                              "conversation_a", "conversation_b"}
        assert first["anony"] is False and second["anony"] is True
        assert (first["language"], second["language"]) == ("English", "Chinese")
        assert second["turn"] == 2 and first["tstamp"] < second["tstamp"]
        assert first["conversation_a"][0] == {"role": "user", "content": "Hello?"}

    def test_the_judge_is_a_salted_hash_never_the_session_or_ip(self, arena_votes, settings):
        settings.ARENA_IP_SALT = "pepper"
        Battle.objects.update(ip_hash="203.0.113.9-hash")
        records = export()
        expected = hmac.new(b"pepper", b"session-123", hashlib.sha256).hexdigest()[:32]
        assert records[0]["judge"] == expected
        text = json.dumps(records)
        assert "session-123" not in text and "203.0.113.9" not in text and "rater" not in text.replace('"judge"', "")

    def test_flagged_votes_come_with_their_flags_on_request(self, arena_votes):
        records = export("--include-flagged")
        assert len(records) == 3 and records[2]["identity_leak"] is True

    def test_it_writes_a_file(self, arena_votes, tmp_path):
        path = tmp_path / "out.jsonl"
        call_command("export_battles", str(path), stdout=io.StringIO())
        assert len(path.read_text().splitlines()) == 2


@pytest.mark.django_db
class TestImport:
    def test_export_then_import_round_trips(self, arena_votes, tmp_path):
        path = tmp_path / "battles.jsonl"
        call_command("export_battles", str(path), "--include-flagged", stdout=io.StringIO())
        exported = [json.loads(line) for line in path.read_text().splitlines()]
        # A fresh deployment: nothing but the file.
        Vote.objects.all().delete()
        Battle.objects.all().delete()
        ServedModel.objects.all().delete()
        out = io.StringIO()
        call_command("import_battles", str(path), stdout=out)
        assert "imported 3 battles" in out.getvalue() and "ant, bee" in out.getvalue()
        assert [comparable(r) for r in export("--include-flagged")] == [comparable(r) for r in exported]
        battle = Battle.objects.get(vote__winner="tie (bothbad)")
        assert (battle.language, battle.turn_total, battle.status) == ("zh-cn", 2, Battle.Status.VOTED)
        assert Battle.objects.filter(mode=Battle.Mode.NAMED).count() == 1

    def test_style_round_trips_through_fastchat_conv_metadata_alone(self, arena_votes, tmp_path):
        exported = export()
        first, second = exported
        meta = first["conv_metadata"]
        # FastChat's style control reads these four names per side and sums each count dict.
        fastchat_a = (meta["sum_assistant_a_tokens"], sum(meta["header_count_a"].values()),
                      sum(meta["list_count_a"].values()), sum(meta["bold_count_a"].values()))
        assert fastchat_a == (50, 0, 1, 0)
        assert sum(meta["bold_count_b"].values()) == 2 and meta["sum_assistant_b_tokens"] == 80
        assert "conv_metadata" not in second  # no style counts: nothing to write
        # A file with only FastChat's names (our own "style" key removed) imports to the same counts.
        path = tmp_path / "fastchat.jsonl"
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "style"}) + "\n" for r in exported))
        Vote.objects.all().delete()
        Battle.objects.all().delete()
        call_command("import_battles", str(path), stdout=io.StringIO())
        assert [v.style for v in Vote.objects.order_by("created_at")] == [first["style"], {}]
        assert export()[0]["conv_metadata"] == meta

    def test_unknown_models_become_placeholders_that_rank_but_never_battle(self, db, tmp_path):
        served = make_model(public_name="served")
        path = tmp_path / "b.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in [
            {"model_a": "served", "model_b": "ghost-7b", "winner": "model_b", "tstamp": 1.5, "anony": True},
            {"model_a": "ghost-7b", "model_b": "served", "winner": "tie", "tstamp": 1.0},
        ]))
        call_command("import_battles", str(path), stdout=io.StringIO())
        ghost = ServedModel.objects.get(public_name="ghost-7b")
        assert not ghost.active and ghost.endpoint.name == "imported" and not ghost.endpoint.healthy
        assert ghost.endpoint.kind == Endpoint.Kind.OPENAI_COMPATIBLE
        assert ghost.endpoint.base_url == "http://imported.invalid/v1"
        assert ServedModel.objects.get(pk=served.pk).active
        assert ghost not in [model for model, _ in contestants_battle_ready()]
        assert contestant_of(ghost).effective_weight() == 0.0
        # Stored in time order, dated by tstamp.
        votes = list(Vote.objects.order_by("pk"))
        assert [v.winner for v in votes] == ["tie", "model_b"]
        assert votes[0].created_at.timestamp() == pytest.approx(1.0)
        snapshot = leaderboard_services.snapshot_create()
        rows = leaderboard_selectors.board_get(snapshot.data, "overall")["board"]["rows"]
        assert [r["model"] for r in rows] == ["ghost-7b", "served"]

    def test_fastchat_files_with_conv_metadata_and_language_names_import(self, db, tmp_path):
        meta = {"sum_assistant_a_tokens": 120, "sum_assistant_b_tokens": 40,
                "header_count_a": {"h1": 1, "h2": 2}, "header_count_b": {"h1": 0},
                "list_count_a": {"ordered": 3, "unordered": 1}, "list_count_b": {"ordered": 0},
                "bold_count_a": {"**": 2, "__": 0}, "bold_count_b": {"**": 0}}
        record = {"model_a": "p", "model_b": "q", "winner": "model_a", "tstamp": 1700000000.0, "judge": "arena_user_9",
                  "language": "German", "anony": True, "turn": 1, "conv_metadata": meta,
                  "conversation_a": [{"role": "user", "content": "Hallo " * 600}]}
        path = tmp_path / "b.json.gz"
        path.write_bytes(gzip.compress(json.dumps([record]).encode()))
        call_command("import_battles", str(path), stdout=io.StringIO())
        vote = Vote.objects.select_related("battle").get()
        assert vote.style == {"a": {"tokens": 120, "headers": 3, "lists": 4, "bold": 2},
                              "b": {"tokens": 40, "headers": 0, "lists": 0, "bold": 0}}
        assert vote.battle.language == "de" and vote.battle.prompt_tokens >= 500
        assert vote.rater_id == "imported:arena_user_9"
        assert export()[0]["judge"] == "arena_user_9"

    @pytest.mark.parametrize("bad,reason", [
        ("{oops", "invalid JSON"),
        ('{"model_a": "a", "model_b": "b", "winner": "model_c"}', "unknown winner"),
        ('{"model_a": "a", "model_b": "b", "winner": "tie", "anony": "yes"}', "anony must be true or false"),
        ('{"model_a": "a", "model_b": "b", "winner": "tie", "turn": -1}', "turn must be a non-negative integer"),
        ('{"model_a": "a", "model_b": "b", "winner": "tie", "conversation_a": "hi"}', "conversation_a must be"),
        ('{"model_a": "a", "model_b": "b", "winner": "tie", "language": 7}', "language must be"),
        ('{"model_a": "a", "model_b": "b", "winner": "tie", "style": {"a": {"tokens": -1}}}', "style"),
        ('{"model_a": "' + "m" * 201 + '", "model_b": "b", "winner": "tie"}', "longer than 200"),
    ])
    def test_a_bad_line_is_named_and_nothing_is_stored(self, db, tmp_path, bad, reason):
        good = '{"model_a": "a", "model_b": "b", "winner": "tie"}'
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join([good, good, bad, good]) + "\n")
        with pytest.raises(CommandError, match=f"line 3: .*{reason}.*nothing was imported"):
            call_command("import_battles", str(path), stdout=io.StringIO())
        assert Vote.objects.count() == Battle.objects.count() == ServedModel.objects.count() == 0

    def test_a_bad_item_of_a_json_list_is_named_by_its_index(self, db, tmp_path):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([{"model_a": "a", "model_b": "b", "winner": "tie"},
                                    {"model_a": "a", "model_b": "b", "winner": "tie", "judge": 5}]))
        with pytest.raises(CommandError, match=r"item \[1\]: judge must be a string"):
            call_command("import_battles", str(path), stdout=io.StringIO())
        assert Vote.objects.count() == 0

    def test_a_dry_run_validates_and_stores_nothing(self, db, tmp_path):
        path = tmp_path / "b.jsonl"
        path.write_text('{"model_a": "a", "model_b": "b", "winner": "tie"}\n')
        out = io.StringIO()
        call_command("import_battles", str(path), "--dry-run", stdout=out)
        assert "1 valid battles" in out.getvalue() and Vote.objects.count() == 0

    def test_judge_hash_is_stable_and_keyed(self, settings):
        settings.ARENA_IP_SALT = "one"
        first = battle_io.judge_hash("r")
        assert first == battle_io.judge_hash("r") and len(first) == 32
        settings.ARENA_IP_SALT = "two"
        assert battle_io.judge_hash("r") != first
