"""training.formats and training.builtin: pure-python, no Django needed
(``pytest training/tests/test_formats.py -p no:django``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.helpers import shared_data_file
from training import formats
from training.builtin import BUILTIN_DATASETS, get_builtin
from training.formats import (
    MAX_REPORTED_ERRORS,
    RowError,
    RowInvalid,
    UnknownFormatError,
    load_normalised,
    parse_dataset,
    write_jsonl,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # shipped with the repository


def jl(*rows) -> bytes:
    """JSON Lines bytes; str items are written verbatim (for broken lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def normalise(row, fmt: str) -> dict:
    """One row through ``parse_dataset``; raises RowInvalid with the reason the parser gives."""
    result = parse_dataset(jl(row), fmt)
    if not result.ok:
        raise RowInvalid(result.errors[0].reason)
    return result.rows[0]


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def only_error(result) -> RowError:
    assert result.error_count == 1, result.errors
    return result.errors[0]


GOOD = {"messages": [u("hi"), a("hello")]}


# ---------------------------------------------------------------------- messages


def test_messages_valid_with_system_and_extra_keys():
    r = parse_dataset(
        jl({"id": "x", "messages": [s("be nice"), u("hi"), a("hello"), u("and?"), a("bye")]}), "messages"
    )
    assert r.ok and r.kind == "sft" and r.errors == []
    assert r.rows == [{"messages": [s("be nice"), u("hi"), a("hello"), u("and?"), a("bye")]}]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"msgs": []}, "missing field 'messages'"),
        ({"messages": "hi"}, "messages must be a list of messages, got string"),
        ({"messages": []}, "messages is an empty list"),
        ({"messages": ["hi"]}, "messages[0] must be an object with 'role' and 'content', got string"),
        ({"messages": [{"content": "hi"}]}, "messages[0] has no 'role'"),
        ({"messages": [u("hi"), {"role": "gpt", "content": "x"}]}, "messages[1] has unknown role 'gpt'"),
        ({"messages": [{"role": "user"}]}, "messages[0] has no 'content'"),
        (
            {"messages": [u("hi"), {"role": "assistant", "content": ["x"]}]},
            "messages[1] (assistant) content must be a string, got array",
        ),
        ({"messages": [u("hi"), a("  \n")]}, "messages[1] (assistant) has empty content"),
        (
            {"messages": [u("hi"), s("sys"), a("x")]},
            "messages[1] is a system message; only the first message may be one",
        ),
        (
            {"messages": [u("hi"), u("again"), a("x")]},
            "messages[0] and messages[1] are consecutive user turns",
        ),
        (
            {"messages": [u("hi"), a("x"), a("y")]},
            "messages[1] and messages[2] are consecutive assistant turns",
        ),
        (
            {"messages": [a("hello"), u("hi"), a("x")]},
            "messages[0] is a assistant turn where a user turn is expected",
        ),
        ({"messages": [s("sys")]}, "messages has no user turn"),
        ({"messages": [u("hi")]}, "messages has no assistant turn to learn from"),
        ({"messages": [s("sys"), u("hi")]}, "messages has no assistant turn to learn from"),
    ],
)
def test_messages_bad_rows(row, reason):
    r = parse_dataset(jl(GOOD, row, GOOD), "messages")
    err = only_error(r)
    assert err.line == 2
    assert err.reason.startswith(reason), err.reason
    assert len(r.rows) == 2 and not r.ok


def test_messages_trailing_user_turn_dropped_or_rejected():
    row = {"messages": [u("q1"), a("a1"), u("q2")]}
    r = parse_dataset(jl(row, GOOD), "messages")
    assert r.ok
    assert r.rows[0] == {"messages": [u("q1"), a("a1")]}
    assert r.notes == ["dropped the trailing user turn (no reply to learn from) in 1 rows"]

    r = parse_dataset(jl(GOOD, row), "messages", trailing_user="error")
    err = only_error(r)
    assert err == RowError(
        2, "messages ends with a user turn; an SFT conversation must end with an assistant turn"
    )


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


# ---------------------------------------------------------------------- prompt-completion


def test_prompt_completion_strings_and_messages():
    rows = [
        {"prompt": "2+2?", "completion": "4"},
        {"prompt": [s("math"), u("2+2?")], "completion": [a("4")]},
    ]
    r = parse_dataset(jl(*rows), "prompt-completion")
    assert r.ok and r.kind == "sft"
    assert r.rows == [{"messages": [u("2+2?"), a("4")]}, {"messages": [s("math"), u("2+2?"), a("4")]}]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"completion": "4"}, "missing field 'prompt'"),
        ({"prompt": "q"}, "missing field 'completion'"),
        ({"prompt": " ", "completion": "4"}, "prompt is empty"),
        ({"prompt": "q", "completion": ""}, "completion is empty"),
        (
            {"prompt": [u("q"), a("x")], "completion": "4"},
            "prompt must end with a user turn, but ends with a assistant turn",
        ),
        (
            {"prompt": "q", "completion": [u("x")]},
            "completion must start with an assistant turn, not a user turn",
        ),
        ({"prompt": "q", "completion": [a("x"), u("y")]}, "completion must end with an assistant turn"),
        ({"prompt": 3, "completion": "4"}, "prompt must be a list of messages, got number"),
    ],
)
def test_prompt_completion_bad_rows(row, reason):
    err = only_error(parse_dataset(jl(row), "prompt-completion"))
    assert err.line == 1 and err.reason == reason


# ---------------------------------------------------------------------- alpaca


def test_alpaca_input_history_system():
    row = {
        "instruction": "Translate",
        "input": "bonjour",
        "output": "hello",
        "history": [["hi", "hey"]],
        "system": "You translate.",
    }
    assert normalise(row, "alpaca") == {
        "messages": [s("You translate."), u("hi"), a("hey"), u("Translate\n\nbonjour"), a("hello")]
    }
    assert normalise({"instruction": "x", "input": "", "output": "y", "history": None}, "alpaca") == {
        "messages": [u("x"), a("y")]
    }


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"output": "y"}, "missing field 'instruction'"),
        ({"instruction": "x", "output": " "}, "output is empty"),
        ({"instruction": "x", "output": 1}, "output must be a string, got number"),
        (
            {"instruction": "x", "output": "y", "history": [["only one"]]},
            "history[0] must be a [user, assistant] pair of strings",
        ),
        (
            {"instruction": "x", "output": "y", "history": "h"},
            "history must be a list of [user, assistant] pairs, got string",
        ),
    ],
)
def test_alpaca_bad_rows(row, reason):
    with pytest.raises(RowInvalid) as exc:
        normalise(row, "alpaca")
    assert str(exc.value) == reason


# ---------------------------------------------------------------------- hh-rlhf


def hh(*turns):
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)


def test_hh_rlhf_multi_turn():
    prefix = [("Human", "Hi"), ("Assistant", "Hello!"), ("Human", "Tell me a joke.")]
    row = {"chosen": hh(*prefix, ("Assistant", "Why did...")), "rejected": hh(*prefix, ("Assistant", "No."))}
    r = parse_dataset(jl(row), "hh-rlhf")
    assert r.ok and r.kind == "preference" and r.notes == []
    assert r.rows == [
        {
            "prompt": [u("Hi"), a("Hello!"), u("Tell me a joke.")],
            "chosen": [a("Why did...")],
            "rejected": [a("No.")],
        }
    ]


def test_hh_rlhf_merges_consecutive_turns_and_drops_empty_ones():
    prefix = [
        ("Human", "Q1"),
        ("Assistant", "A1"),
        ("Assistant", "A1b"),
        ("Human", "Q2"),
        ("Assistant", ""),
        ("Human", "Q3"),
    ]
    row = {
        "chosen": hh(*prefix, ("Assistant", "first"), ("Assistant", "second")),
        "rejected": hh(*prefix, ("Assistant", "")),
    }
    r = parse_dataset(jl(row), "hh-rlhf")
    assert r.ok
    assert r.rows[0] == {
        "prompt": [u("Q1"), a("A1\n\nA1b"), u("Q2\n\nQ3")],
        "chosen": [a("first\n\nsecond")],
        "rejected": [a("")],  # an empty final reply is kept
    }
    assert r.notes == [
        "dropped empty turns before the final reply in 1 rows",
        "merged consecutive same-speaker turns in 1 rows",
        "1 rows have an empty chosen or rejected reply",
    ]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"chosen": hh(("Human", "Q"), ("Assistant", "A"))}, "missing field 'rejected'"),
        ({"chosen": ["x"], "rejected": "y"}, "chosen must be a string, got array"),
        (
            {"chosen": "Human: Q Assistant: A", "rejected": hh(("Human", "Q"), ("Assistant", "B"))},
            "chosen has no '\\n\\nHuman:' / '\\n\\nAssistant:' turns",
        ),
        (
            {
                "chosen": "intro" + hh(("Human", "Q"), ("Assistant", "A")),
                "rejected": hh(("Human", "Q"), ("Assistant", "B")),
            },
            "chosen has text before its first '\\n\\nHuman:' turn",
        ),
        (
            {
                "chosen": hh(("Assistant", "A"), ("Human", "Q"), ("Assistant", "A")),
                "rejected": hh(("Human", "Q"), ("Assistant", "B")),
            },
            "chosen starts with an Assistant turn, not a Human turn",
        ),
        (
            {
                "chosen": hh(("Human", "Q"), ("Assistant", "A")),
                "rejected": hh(("Human", "Q"), ("Assistant", "B"), ("Human", "Q2")),
            },
            "rejected ends with a Human turn, not an Assistant turn",
        ),
        (
            {
                "chosen": hh(("Human", "Q"), ("Assistant", "")),
                "rejected": hh(("Human", "Q"), ("Assistant", " ")),
            },
            "chosen and rejected replies are both empty",
        ),
        (
            {
                "chosen": hh(("Human", "Q"), ("Assistant", "A")),
                "rejected": hh(("Human", "Other Q"), ("Assistant", "B")),
            },
            "chosen and rejected are different conversations before their final Assistant turn "
            "(chosen has 2 turns, rejected 2; first difference at turn 1)",
        ),
        (
            {
                "chosen": hh(("Human", "Q"), ("Assistant", "A"), ("Human", "Q2"), ("Assistant", "A2")),
                "rejected": hh(("Human", "Q"), ("Assistant", "B")),
            },
            "chosen and rejected are different conversations before their final Assistant turn "
            "(chosen has 4 turns, rejected 2; first difference at turn 2)",
        ),
    ],
)
def test_hh_rlhf_bad_rows(row, reason):
    r = parse_dataset(
        jl(
            {
                "chosen": hh(("Human", "Q"), ("Assistant", "A")),
                "rejected": hh(("Human", "Q"), ("Assistant", "B")),
            },
            row,
        ),
        "hh-rlhf",
    )
    assert only_error(r) == RowError(2, reason)


# ---------------------------------------------------------------------- preference


def test_preference_explicit_prompt_forms():
    rows = [
        {"prompt": "Q", "chosen": "good", "rejected": "bad"},
        {"prompt": [s("sys"), u("Q")], "chosen": [a("good")], "rejected": [a("bad")]},
        # UltraFeedback-binarized style: the replies repeat the prompt messages
        {"prompt": "Q", "chosen": [u("Q"), a("good")], "rejected": [u("Q"), a("bad")]},
    ]
    r = parse_dataset(jl(*rows), "preference")
    assert r.ok
    assert r.rows[0] == {"prompt": [u("Q")], "chosen": [a("good")], "rejected": [a("bad")]}
    assert r.rows[1]["prompt"] == [s("sys"), u("Q")]
    assert r.rows[2] == r.rows[0]
    assert r.notes == ["removed the repeated prompt from 2 chosen/rejected lists"]


def test_preference_implicit_prompt():
    row = {"chosen": [u("Q"), a("A"), u("Q2"), a("good")], "rejected": [u("Q"), a("A"), u("Q2"), a("bad")]}
    assert normalise(row, "preference") == {
        "prompt": [u("Q"), a("A"), u("Q2")],
        "chosen": [a("good")],
        "rejected": [a("bad")],
    }


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"prompt": "Q", "chosen": "good"}, "missing field 'rejected'"),
        (
            {"chosen": "good", "rejected": "bad"},
            "missing field 'prompt' (without it, chosen and rejected must be message lists)",
        ),
        (
            {"chosen": [u("Q"), a("x")], "rejected": [u("Other"), a("y")]},
            "without 'prompt', chosen and rejected must be the same conversation up to their last message",
        ),
        (
            {"prompt": [u("Q"), a("x")], "chosen": "g", "rejected": "b"},
            "prompt must end with a user turn, but ends with a assistant turn",
        ),
        (
            {"prompt": "Q", "chosen": [a("g"), a("g2")], "rejected": "b"},
            "chosen must be a single assistant message (after the prompt), got [assistant, assistant]",
        ),
        (
            {"prompt": "Q", "chosen": "g", "rejected": [u("b")]},
            "rejected must be a single assistant message (after the prompt), got [user]",
        ),
        ({"prompt": "Q", "chosen": "", "rejected": ""}, "chosen and rejected replies are both empty"),
        (
            {"prompt": "Q", "chosen": [{"role": "bot", "content": "g"}], "rejected": "b"},
            "chosen[0] has unknown role 'bot' (expected system, user or assistant)",
        ),
    ],
)
def test_preference_bad_rows(row, reason):
    err = only_error(parse_dataset(jl(row), "preference"))
    assert err == RowError(1, reason)


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


def test_kto_rows_need_a_boolean_label_and_a_non_empty_answer():
    rows = [{"prompt": "Q?", "completion": "A.", "label": True},
            {"prompt": [{"role": "user", "content": "Q?"}], "completion": [{"role": "assistant", "content": "B"}],
             "label": False},
            {"prompt": "Q?", "completion": "A.", "label": 1},
            {"prompt": "Q?", "completion": " ", "label": False}]
    r = parse_dataset(jl(*rows), "kto")
    assert r.kind == "unpaired" and [e.line for e in r.errors] == [3, 4]
    assert "label must be true (desirable) or false (undesirable)" in r.errors[0].reason
    assert r.rows[1] == {"prompt": [{"role": "user", "content": "Q?"}],
                         "completion": [{"role": "assistant", "content": "B"}], "label": False}
    assert formats.parse_dataset(jl(*r.rows), "kto").rows == r.rows  # normalised rows re-read as they are


def test_prompts_and_text_rows():
    r = parse_dataset(jl({"prompt": "Write a poem"}, {"prompt": [{"role": "assistant", "content": "x"}]}), "prompts")
    assert r.rows == [{"prompt": [{"role": "user", "content": "Write a poem"}]}] and r.errors[0].line == 2
    r = parse_dataset(jl({"text": "Once upon a time"}, {"text": ""}, {"body": "x"}), "text")
    assert r.rows == [{"text": "Once upon a time"}] and [e.line for e in r.errors] == [2, 3]


def test_raw_text_files_split_into_documents_on_dash_lines():
    r = parse_dataset(b"First doc\nline two\n---\n\nSecond doc\n---\n", "raw-text")
    assert r.ok and r.rows == [{"text": "First doc\nline two"}, {"text": "Second doc"}]
    assert parse_dataset(b"Just one document, no JSON at all: {", "raw-text").rows == [
        {"text": "Just one document, no JSON at all: {"}]
    assert not parse_dataset(b"\xff\xfe", "raw-text").ok
