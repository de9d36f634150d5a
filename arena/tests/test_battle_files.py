"""Tests of the battle-file reader (pure, no database)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from arena import ratings
from arena.battle_files.arrays import read_battle_arrays
from arena.battle_files.parse import WINNERS, BattleFileError, parse_battles, read_battles


def jsonl(*records: object) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def battle(a: str = "m1", b: str = "m2", winner: str = "model_a", **extra: object) -> dict[str, object]:
    return {"model_a": a, "model_b": b, "winner": winner, **extra}


def test_jsonl_sorted_by_tstamp_stably_with_extra_keys_kept() -> None:
    text = jsonl(
        battle(tstamp=30.0, question_id="q3"),
        "",
        battle("m2", "m3", "tie", tstamp=10, anony=True, conv_metadata={"sum_assistant_a_tokens": 5}),
        battle("m3", "m1", "tie (bothbad)", tstamp=20.5, question_id="first-20"),
        battle("m1", "m3", "model_b", tstamp=20.5, question_id="second-20"),
    )
    battles = parse_battles(text)
    assert [b["tstamp"] for b in battles] == [10, 20.5, 20.5, 30.0]
    assert [b.get("question_id") for b in battles[1:3]] == ["first-20", "second-20"]  # file order kept
    assert battles[0]["anony"] is True and battles[0]["conv_metadata"] == {"sum_assistant_a_tokens": 5}


def test_json_list_without_tstamp_keeps_file_order() -> None:
    records = [battle("b", "a"), battle("a", "c", "tie"), battle("c", "b", "model_b")]
    assert parse_battles(json.dumps(records, indent=2)) == records
    assert parse_battles("") == [] and parse_battles("[]") == [] and parse_battles("\n\n") == []
    assert parse_battles("\ufeff" + jsonl(battle())) == [battle()]  # byte-order mark tolerated


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"model_a": "m1", "model_b": "m2", "winner": "model_a"', "invalid JSON"),
        ('["m1", "m2", "model_a"]', "expected a JSON object, got list"),
        ('{"model_b": "m2", "winner": "tie"}', "missing field 'model_a'"),
        ('{"model_a": "m1", "winner": "tie"}', "missing field 'model_b'"),
        ('{"model_a": "m1", "model_b": "m2"}', "missing field 'winner'"),
        ('{"model_a": "m1", "model_b": "m2", "winner": "draw"}', "unknown winner 'draw'"),
        ('{"model_a": "m1", "model_b": "m2", "winner": 1}', "unknown winner 1"),
        ('{"model_a": "m1", "model_b": "m1", "winner": "tie"}', "the same model 'm1'"),
        ('{"model_a": 7, "model_b": "m2", "winner": "tie"}', "model_a must be a string, got int 7"),
        ('{"model_a": "m1", "model_b": null, "winner": "tie"}', "model_b must be a string, got NoneType"),
        ('{"model_a": " ", "model_b": "m2", "winner": "tie"}', "model_a is empty"),
        (
            '{"model_a": "m1", "model_b": "m2", "winner": "tie", "tstamp": "noon"}',
            "tstamp must be a finite number",
        ),
        (
            '{"model_a": "m1", "model_b": "m2", "winner": "tie", "tstamp": true}',
            "tstamp must be a finite number",
        ),
        # NaN is not JSON (the standard library's json accepts it; orjson, like the RFC, does not).
        ('{"model_a": "m1", "model_b": "m2", "winner": "tie", "tstamp": NaN}', "invalid JSON"),
    ],
)
def test_each_bad_jsonl_line_is_reported_with_its_line_number(line: str, reason: str) -> None:
    text = jsonl(battle(), "", battle("m2", "m3"), line, battle())
    with pytest.raises(BattleFileError) as info:
        parse_battles(text, source="votes.jsonl")
    err = info.value
    assert err.line == 4 and err.index is None  # the blank line 2 still counts
    assert reason in err.reason
    assert str(err).startswith("votes.jsonl, line 4: ")


def test_json_list_errors_name_the_item_index() -> None:
    records = [battle(), battle(), battle("x", "x")]
    with pytest.raises(BattleFileError) as info:
        parse_battles(json.dumps(records))
    assert info.value.index == 2 and info.value.line is None and "same model" in str(info.value)
    # A syntax error in a JSON list has no item yet: its line is reported.
    with pytest.raises(BattleFileError) as info:
        parse_battles('[\n {"model_a": "a", "model_b": "b", "winner": "tie"},\n {"model_a": }\n]')
    assert info.value.line == 3 and "invalid JSON" in info.value.reason
    # A file that is neither a list nor JSON Lines (a pretty-printed object) fails on line 1.
    with pytest.raises(BattleFileError) as info:
        parse_battles('{\n  "battles": []\n}\n')
    assert info.value.line == 1 and "invalid JSON" in info.value.reason


def test_mixed_tstamp_presence_is_an_error() -> None:
    text = jsonl(battle(tstamp=1), battle(tstamp=2), battle(), battle(tstamp=3))
    with pytest.raises(BattleFileError, match="missing tstamp") as info:
        parse_battles(text)
    assert info.value.line == 3


def test_nothing_is_returned_when_the_last_line_is_bad() -> None:
    text = jsonl(*[battle(tstamp=k) for k in range(100)], battle(winner="model_c", tstamp=100))
    with pytest.raises(BattleFileError) as info:
        parse_battles(text)
    assert info.value.line == 101


def test_read_battles_plain_and_gzip(tmp_path: Path) -> None:
    records = [battle(tstamp=2), battle("m3", "m1", "tie", tstamp=1)]
    plain = tmp_path / "battles.json"
    plain.write_text(json.dumps(records))
    packed = tmp_path / "battles.jsonl.gz"
    packed.write_bytes(gzip.compress(jsonl(*records).encode()))
    expected = [records[1], records[0]]
    assert read_battles(plain) == expected and read_battles(packed) == expected
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl(battle()).encode() + b'{"model_a": "\xff"}\n')
    with pytest.raises(BattleFileError, match="UTF-8") as info:
        read_battles(bad)
    assert info.value.line == 2 and str(bad) in str(info.value)


def test_battles_feed_pair_counts() -> None:
    battles = parse_battles(jsonl(battle(tstamp=1), battle("m2", "m1", "model_b", tstamp=2)))
    counts = ratings.PairCounts.from_battles((b["model_a"], b["model_b"], b["winner"]) for b in battles)
    assert counts.counts.tolist() == [[2, 0, 0, 0]]
    assert WINNERS == ratings.WINNERS


def test_battle_arrays_match_the_dicts_in_time_order(tmp_path: Path) -> None:
    records = [battle("m2", "m3", "tie", tstamp=5), battle(tstamp=1), battle("m3", "m1", "tie (bothbad)", tstamp=5),
               battle("m1", "m3", "model_b", tstamp=2.5, conv_metadata={"x": 1})]
    path = tmp_path / "b.jsonl"
    path.write_text(jsonl(records[0], "", *records[1:]))
    arrays = read_battle_arrays(path)
    expected = read_battles(path)
    assert arrays.n == 4 and arrays.models == ["m1", "m2", "m3"]
    assert [(arrays.models[a], arrays.models[b], WINNERS[o]) for a, b, o in
            zip(arrays.model_a, arrays.model_b, arrays.outcome, strict=True)] == [
        (r["model_a"], r["model_b"], r["winner"]) for r in expected]
    path.write_text(json.dumps([battle("b", "a"), battle("a", "c", "tie")]))  # a JSON list, no tstamps: file order
    arrays = read_battle_arrays(path)
    assert arrays.models == ["a", "b", "c"] and arrays.model_a.tolist() == [1, 0] and arrays.outcome.tolist() == [0, 2]
    path.write_text("")
    assert read_battle_arrays(path).n == 0


@pytest.mark.parametrize(("lines", "line", "reason"), [
    ([battle(), battle(), battle("m2", "m2")], 3, "the same model"),
    ([battle(), {"model_a": "m1", "model_b": ["m2"], "winner": "tie"}], 2, "model_b must be a string"),
    ([battle(), battle(winner=["tie"])], 2, "unknown winner"),
    ([battle(), battle(tstamp=True)], 2, "tstamp must be a finite number"),
    ([battle(), "[1]"], 2, "expected a JSON object, got list"),
    ([battle(tstamp=1), battle()], 2, "missing tstamp"),
])
def test_battle_arrays_check_every_record_as_read_battles_does(tmp_path: Path, lines, line, reason) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(jsonl(*lines))
    for reader in (read_battles, read_battle_arrays):
        with pytest.raises(BattleFileError, match=reason) as info:
            reader(path)
        assert info.value.line == line


def _arrays_from_dicts(battles: list[dict]) -> tuple[list[str], list[tuple[int, int, int]]]:
    names = sorted({b[k] for b in battles for k in ("model_a", "model_b")})
    return names, [(names.index(b["model_a"]), names.index(b["model_b"]), WINNERS.index(b["winner"])) for b in battles]


def test_the_bulk_path_over_several_blocks_matches_the_dicts(tmp_path: Path) -> None:
    # 150,000 lines (three blocks of 65,536) of a few distinct battles, as an export without time
    # stamps repeats; a blank line and a record with extra keys in the middle; then JSON list form.
    distinct = [battle("a", "b"), battle("b", "c", "tie"), battle("c", "a", "tie (bothbad)"), battle("b", "a", "model_b")]
    records = [distinct[k * 7 % 4] for k in range(150_000)]
    records[70_000] = battle("d", "a", "model_b", language="en")
    lines = [json.dumps(r) for r in records]
    lines.insert(100_000, "")
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    as_list = tmp_path / "many.json"
    as_list.write_text(json.dumps(records))
    names, cells = _arrays_from_dicts(read_battles(path))
    for source in (path, as_list):
        arrays = read_battle_arrays(source)
        assert arrays.models == names == ["a", "b", "c", "d"] and arrays.n == 150_000
        assert list(zip(arrays.model_a.tolist(), arrays.model_b.tolist(), arrays.outcome.tolist(), strict=True)) == cells


def test_the_bulk_path_reports_the_first_bad_line_of_a_late_block(tmp_path: Path) -> None:
    lines = [json.dumps(battle())] * 140_000
    lines[131_000] = json.dumps(battle("x", "x"))
    lines[139_000] = "{not json"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BattleFileError) as err:
        read_battle_arrays(path)
    assert err.value.line == 131_001 and "same model" in err.value.reason
    # Time stamps in the first block, none from line 70,001 on: named at that line.
    stamped = [json.dumps(battle(tstamp=k)) for k in range(70_000)] + [json.dumps(battle())] * 10
    path.write_text("\n".join(stamped) + "\n")
    with pytest.raises(BattleFileError) as err:
        read_battle_arrays(path)
    assert err.value.line == 70_001 and "missing tstamp" in err.value.reason


@pytest.mark.parametrize("chunk", [7, 50, 64, 4096])
def test_chunked_reading_matches_the_whole_file_reader(tmp_path: Path, monkeypatch, chunk: int) -> None:
    # JSON Lines are read _CHUNK bytes at a time: lines that straddle chunks, lines longer than a
    # chunk, blank and CRLF lines at chunk ends, a BOM, no newline at the end, gzip; the records,
    # their order and the line numbers of errors are those of the whole-file reader.
    monkeypatch.setattr("arena.battle_files.arrays._CHUNK", chunk)
    records = [battle(f"m{k % 5}", f"m{(k + 1) % 5}", WINNERS[k % 4], tstamp=k % 13, note="x" * (k % 90))
               for k in range(400)]
    lines = [json.dumps(r) for r in records]
    for at in (3, 40, 41, 250):
        lines.insert(at, "" if at % 2 else "  \r")
    text = "\ufeff" + "\r\n".join(lines)  # no newline after the last line
    path = tmp_path / "b.jsonl"
    for payload, name in ((text.encode(), "b.jsonl"), (gzip.compress(text.encode()), "b.jsonl.gz")):
        path = tmp_path / name
        path.write_bytes(payload)
        names, cells = _arrays_from_dicts(read_battles(path))
        arrays = read_battle_arrays(path)
        assert arrays.models == names and arrays.n == 400
        assert list(zip(arrays.model_a.tolist(), arrays.model_b.tolist(), arrays.outcome.tolist(), strict=True)) == cells
    lines[300] = json.dumps(battle("m1", "m1"))
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(BattleFileError) as expected:
        read_battles(path)
    with pytest.raises(BattleFileError) as err:
        read_battle_arrays(path)
    assert err.value.line == expected.value.line == 301 and "same model" in err.value.reason
    path.write_text(" \n" * 40 + json.dumps([battle("b", "a")]))  # a JSON list after more than a chunk of space
    assert read_battle_arrays(path).models == ["a", "b"]
