"""training.formats, row by row: each dataset format's valid rows, their normalised form, and the
reason a bad row gives (pure python, no Django needed)."""

from __future__ import annotations

import pytest

from training import formats
from training.formats import (
    RowError,
    RowInvalid,
    parse_dataset,
)
from training.tests.format_helpers import GOOD, a, hh, jl, normalise, only_error, s, u

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
