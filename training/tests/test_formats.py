"""training.formats and training.builtin, file by file: encodings, compression, JSON arrays,
normalised files, the shipped and shared real files and the built-in registry (pure python, no
Django needed). Row-level rules of each format: test_formats_rows.py."""

from __future__ import annotations

import gzip

import pytest

from tests.helpers import shared_data_file
from training import formats
from training.builtin import BUILTIN_DATASETS, get_builtin
from training.formats import (
    MAX_REPORTED_ERRORS,
    RowError,
    UnknownFormatError,
    load_normalised,
    parse_dataset,
    write_jsonl,
)
from training.tests.format_helpers import DATA_DIR, GOOD, a, hh, jl, only_error, s, u


def test_invalid_json_and_non_object_rows_with_line_numbers():
    data = jl(GOOD, '{"messages": [', "", '"just a string"', "[1, 2]", "null", GOOD)
    r = parse_dataset(data, "messages")
    assert [e.line for e in r.errors] == [2, 4, 5, 6]  # line 3 is blank and skipped
    assert r.errors[0].reason.startswith("invalid JSON: ")
    assert r.errors[1].reason == "row must be a JSON object, got string"
    assert r.errors[2].reason == "row must be a JSON object, got array"
    assert r.errors[3].reason == "row must be a JSON object, got null"
    assert len(r.rows) == 2


def test_crlf_and_unicode_line_separator_inside_strings():
    # U+2028 is legal unescaped inside a JSON string: it must not split the row
    row = '{"messages": [{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "c"}]}'
    r = parse_dataset((row + "\r\n" + row + "\r\n").encode(), "messages")
    assert r.ok and len(r.rows) == 2
    assert r.rows[0]["messages"][0]["content"] == "a\u2028b"


# ---------------------------------------------------------------------- whole-file problems


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", gzip.compress(b""), b"[]", b"  [ ]\n"])
def test_empty_file(data):
    r = parse_dataset(data, "messages")
    assert r.errors == [RowError(0, "the file has no rows")] and r.rows == []


def test_non_utf8_file_reports_line():
    data = jl(GOOD, GOOD) + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'
    err = only_error(parse_dataset(data, "messages"))
    assert err.line == 3
    assert err.reason == "the file is not valid UTF-8 text (byte 0xe9 at line 3)"


def test_utf16_file():
    data = jl(GOOD).decode().encode("utf-16")
    assert only_error(parse_dataset(data, "messages")) == RowError(
        0, "the file is UTF-16 text; save it as UTF-8"
    )


def test_utf8_bom_is_accepted():
    assert parse_dataset(b"\xef\xbb\xbf" + jl(GOOD), "messages").ok


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    path = tmp_path / "data.jsonl"  # no .gz
    path.write_bytes(gzip.compress(jl(GOOD, GOOD)))
    r = parse_dataset(path, "messages")
    assert r.ok and len(r.rows) == 2
    plain = tmp_path / "plain.jsonl.gz"  # .gz but not gzip
    plain.write_bytes(jl(GOOD))
    assert parse_dataset(str(plain), "messages").ok


def test_file_object_source(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(jl(GOOD))
    with open(path, "rb") as fh:
        assert parse_dataset(fh, "messages").ok


def test_corrupt_gzip():
    data = gzip.compress(jl(GOOD, GOOD))[:-12]
    err = only_error(parse_dataset(data, "messages"))
    assert err.line == 0
    assert err.reason.startswith("the file starts like gzip but cannot be decompressed")


def test_max_bytes():
    err = only_error(parse_dataset(gzip.compress(jl(*[GOOD] * 100)), "messages", max_bytes=1000))
    assert err == RowError(0, "the file is larger than 1000 bytes when decompressed")


def test_errors_are_capped_but_counted():
    data = jl(*(["not json"] * 60), GOOD)
    r = parse_dataset(data, "messages")
    assert r.error_count == 60 and len(r.errors) == MAX_REPORTED_ERRORS
    assert r.errors_truncated
    assert [e.line for e in r.errors] == list(range(1, 51))
    assert r.error_lines()[-1] == "... and 10 more errors"
    assert r.error_lines()[0].startswith("line 1: invalid JSON")


def test_unknown_format():
    with pytest.raises(UnknownFormatError, match="unknown dataset format 'sharegpt'"):
        parse_dataset(jl(GOOD), "sharegpt")


# ---------------------------------------------------------------------- JSON array files


def test_json_array_with_element_line_numbers():
    text = '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c"},\n  {"instruction": "", "output": "x"}\n]\n'
    r = parse_dataset(text.encode(), "alpaca")
    assert r.errors == [
        RowError(3, "missing field 'output'"),
        RowError(4, "instruction and input are both empty"),
    ]
    assert r.rows == [{"messages": [u("a"), a("b")]}]


@pytest.mark.parametrize(
    "text, line, reason",
    [
        (
            '[\n {"instruction": "a", "output": "b"},\n {"instruction": \n]',
            4,
            "invalid JSON: Expecting value",
        ),
        (
            '[\n {"instruction": "a", "output": "b"}\n {"instruction": "c", "output": "d"}\n]',
            3,
            "invalid JSON: expected ',' or ']'",
        ),
        ('[{"instruction": "a", "output": "b"}]\n\nextra', 3, "unexpected text after the JSON array"),
    ],
)
def test_broken_json_array(text, line, reason):
    r = parse_dataset(text.encode(), "alpaca")
    assert r.errors[-1].line == line
    assert r.errors[-1].reason.startswith(reason), r.errors[-1].reason
    assert not r.ok


# ---------------------------------------------------------------------- normalised files


def test_normalised_rows_reparse_unchanged(tmp_path):
    sft = parse_dataset(jl({"instruction": "x", "output": "y"}, {"prompt": "p", "completion": "c"}), "alpaca")
    assert not sft.ok  # the second row is not alpaca
    sft = parse_dataset(
        jl({"prompt": "p", "completion": "c"}, {"prompt": [s("S"), u("p")], "completion": "c"}),
        "prompt-completion",
    )
    pref = parse_dataset(
        jl(
            {
                "chosen": hh(("Human", "Q"), ("Assistant", "")),
                "rejected": hh(("Human", "Q"), ("Assistant", "B")),
            }
        ),
        "hh-rlhf",
    )
    for result in (sft, pref):
        assert result.ok
        path = write_jsonl(result.rows, tmp_path / f"{result.kind}.jsonl")
        assert load_normalised(path, result.kind) == result.rows
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jl({"messages": [u("q"), a("a"), u("unanswered")]}))
    with pytest.raises(ValueError, match="line 1: messages ends with a user turn"):
        load_normalised(bad, "sft")


# ---------------------------------------------------------------------- real files


@pytest.mark.parametrize(
    "rel, fmt, rows",
    [
        ("hh_rlhf/helpful-base_test.jsonl.gz", "hh-rlhf", 2354),
        ("hh_rlhf/harmless-base_test.jsonl.gz", "hh-rlhf", 2312),
        ("sft_chat/oasst_en_messages.jsonl", "messages", 80),
        ("sft_chat/ultrachat_200k_test_gen_5rows.jsonl", "messages", 5),
        ("non_commercial/lima_train.json.gz", "alpaca", 829),
    ],
)
def test_real_files_parse_completely(rel, fmt, rows):
    r = parse_dataset(DATA_DIR / rel, fmt)  # the copies shipped in data/
    assert r.ok, r.error_lines()
    assert len(r.rows) == rows
    for row in r.rows:
        if r.kind == "sft":
            assert row["messages"][-1]["role"] == "assistant"
        else:
            assert row["prompt"][-1]["role"] == "user"
            assert [m["role"] for m in row["prompt"]][::2] == ["user"] * ((len(row["prompt"]) + 1) // 2)


def test_real_hh_rlhf_quirks_are_counted():
    helpful = parse_dataset(shared_data_file("hh_rlhf/helpful-base_test.jsonl.gz"), "hh-rlhf")
    assert helpful.notes == [
        "dropped empty turns before the final reply in 1 rows",
        "merged consecutive same-speaker turns in 16 rows",
        "4 rows have an empty chosen or rejected reply",
        "2 rows have identical chosen and rejected replies",
    ]
    first = helpful.rows[0]
    assert first["prompt"] == [u("Do you know why turkeys became the official food of thanksgiving?")]
    assert first["chosen"][0]["content"].startswith("To be honest, I don’t know anything about that.")
    assert first["rejected"][0]["content"].startswith("I know that the American Indians")


def test_real_ultrachat_rows_end_on_user_turn():
    path = shared_data_file("sft_chat/ultrachat_200k_test_gen_5rows.jsonl")
    strict = parse_dataset(path, "messages", trailing_user="error")
    assert strict.error_count == 5
    assert {e.reason for e in strict.errors} == {
        "messages ends with a user turn; an SFT conversation must end with an assistant turn"
    }
    r = parse_dataset(path, "messages")
    assert [len(row["messages"]) for row in r.rows] == [4, 2, 2, 6, 2]


def test_real_lima_multi_turn_history():
    r = parse_dataset(DATA_DIR / "non_commercial/lima_train.json.gz", "alpaca")
    lengths = [len(row["messages"]) for row in r.rows]
    assert lengths.count(2) == 806 and max(lengths) == 20  # one row has 9 history pairs


def test_builtin_registry_matches_files():
    for ds in BUILTIN_DATASETS:
        path = ds.resolve(DATA_DIR)
        assert path.is_file(), path
        r = parse_dataset(path, ds.format)
        assert r.ok and r.kind == ds.kind
        assert len(r.rows) == ds.rows
    lima = get_builtin("lima-train")
    assert lima.license == "CC BY-NC-SA 4.0" and not lima.commercial_use
    assert {ds.kind for ds in BUILTIN_DATASETS} == {"sft", "preference"}
    with pytest.raises(KeyError, match="unknown built-in dataset"):
        get_builtin("nope")


def test_format_kinds():
    assert formats.FORMATS == {
        "messages": "sft",
        "prompt-completion": "sft",
        "alpaca": "sft",
        "hh-rlhf": "preference",
        "preference": "preference",
        "kto": "unpaired",
        "prompts": "prompt",
        "text": "text",
        "raw-text": "text",
    }
    assert formats.kind_of("hh-rlhf") == "preference"


def test_raw_text_files_split_into_documents_on_dash_lines():
    r = parse_dataset(b"First doc\nline two\n---\n\nSecond doc\n---\n", "raw-text")
    assert r.ok and r.rows == [{"text": "First doc\nline two"}, {"text": "Second doc"}]
    assert parse_dataset(b"Just one document, no JSON at all: {", "raw-text").rows == [
        {"text": "Just one document, no JSON at all: {"}]
    assert not parse_dataset(b"\xff\xfe", "raw-text").ok
