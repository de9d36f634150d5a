"""Row validation and normalisation for :mod:`training.formats` (standard library only).

The format names and kinds (``FORMATS``, ``NORMALISED_FORMAT``), ``kind_of`` and the row
normaliser: one raw row of an input format -> one normalised record, or ``RowInvalid`` with a
reason a person can act on. :mod:`training.formats` documents the formats and reads whole files.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from training.reading import RowInvalid

SFT = "sft"
PREFERENCE = "preference"
UNPAIRED = "unpaired"  # KTO: one answer with a desirable/undesirable label
PROMPT = "prompt"  # prompts only (online RL generates the answers)
TEXT = "text"  # raw text (continued pretraining)

#: format name -> kind
FORMATS: dict[str, str] = {
    "messages": SFT,
    "prompt-completion": SFT,
    "alpaca": SFT,
    "hh-rlhf": PREFERENCE,
    "preference": PREFERENCE,
    "kto": UNPAIRED,
    "prompts": PROMPT,
    "text": TEXT,
    "raw-text": TEXT,
}
#: the format a normalised file of each kind is re-read with
NORMALISED_FORMAT: dict[str, str] = {SFT: "messages", PREFERENCE: "preference", UNPAIRED: "kto", PROMPT: "prompts",
                                     TEXT: "text"}

ROLES = ("system", "user", "assistant")
TRAILING_USER_POLICIES = ("drop", "error")

_HH_TAG = re.compile(r"\n\n(Human|Assistant):")


class UnknownFormatError(ValueError):
    """The format name is not one of ``FORMATS``."""


def kind_of(fmt: str) -> str:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise UnknownFormatError(
            f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}"
        ) from None


# --------------------------------------------------------------------------- reading


# --------------------------------------------------------------------------- messages


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _require(row: dict, key: str) -> Any:
    if key not in row:
        raise RowInvalid(f"missing field {key!r}")
    return row[key]


def _messages(value: Any, what: str, *, allow_empty_content: bool = False) -> list[dict[str, str]]:
    """Validate a list of chat messages; returns clean ``{"role", "content"}`` dicts."""
    if not isinstance(value, list):
        raise RowInvalid(f"{what} must be a list of messages, got {_type_name(value)}")
    if not value:
        raise RowInvalid(f"{what} is an empty list")
    out = []
    for i, msg in enumerate(value):
        where = f"{what}[{i}]"
        if not isinstance(msg, dict):
            raise RowInvalid(f"{where} must be an object with 'role' and 'content', got {_type_name(msg)}")
        if "role" not in msg:
            raise RowInvalid(f"{where} has no 'role'")
        role = msg["role"]
        if not isinstance(role, str) or role not in ROLES:
            raise RowInvalid(f"{where} has unknown role {role!r} (expected system, user or assistant)")
        if "content" not in msg:
            raise RowInvalid(f"{where} has no 'content'")
        content = msg["content"]
        if not isinstance(content, str):
            raise RowInvalid(f"{where} ({role}) content must be a string, got {_type_name(content)}")
        if not content.strip() and not allow_empty_content:
            raise RowInvalid(f"{where} ({role}) has empty content")
        out.append({"role": role, "content": content})
    return out


def _check_order(msgs: list[dict[str, str]], what: str, *, first_role: str = "user") -> None:
    """Optional leading system message, then alternating turns starting with ``first_role``."""
    expected = first_role
    for i, msg in enumerate(msgs):
        role = msg["role"]
        if role == "system":
            if i != 0:
                raise RowInvalid(f"{what}[{i}] is a system message; only the first message may be one")
            continue
        if role != expected:
            if i > 0 and msgs[i - 1]["role"] == role:
                raise RowInvalid(f"{what}[{i - 1}] and {what}[{i}] are consecutive {role} turns")
            raise RowInvalid(f"{what}[{i}] is a {role} turn where a {expected} turn is expected")
        expected = "assistant" if role == "user" else "user"


def _prompt(value: Any, what: str = "prompt") -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RowInvalid(f"{what} is empty")
        return [{"role": "user", "content": value}]
    msgs = _messages(value, what)
    _check_order(msgs, what)
    if msgs[-1]["role"] != "user":
        raise RowInvalid(f"{what} must end with a user turn, but ends with a {msgs[-1]['role']} turn")
    return msgs


# --------------------------------------------------------------------------- per format


class RowNormaliser:
    def __init__(self, fmt: str, trailing_user: str):
        if trailing_user not in TRAILING_USER_POLICIES:
            raise ValueError(f"trailing_user must be one of {TRAILING_USER_POLICIES}, got {trailing_user!r}")
        self.fmt = fmt
        self.kind = kind_of(fmt)
        self.trailing_user = trailing_user
        self.counts: Counter[str] = Counter()
        self._fn = {
            "messages": self._messages_row,
            "prompt-completion": self._prompt_completion_row,
            "alpaca": self._alpaca_row,
            "hh-rlhf": self._hh_row,
            "preference": self._preference_row,
            "kto": self._kto_row,
            "prompts": self._prompts_row,
            "text": self._text_row,
            "raw-text": self._text_row,
        }[fmt]

    def __call__(self, row: Any) -> dict[str, Any]:
        if not isinstance(row, dict):
            raise RowInvalid(f"row must be a JSON object, got {_type_name(row)}")
        return self._fn(row)

    # sft ----------------------------------------------------------------

    def _messages_row(self, row: dict) -> dict[str, Any]:
        msgs = _messages(_require(row, "messages"), "messages")
        _check_order(msgs, "messages")
        if not any(m["role"] == "user" for m in msgs):
            raise RowInvalid("messages has no user turn")
        if not any(m["role"] == "assistant" for m in msgs):
            raise RowInvalid("messages has no assistant turn to learn from")
        if msgs[-1]["role"] == "user":
            if self.trailing_user == "error":
                raise RowInvalid(
                    "messages ends with a user turn; an SFT conversation must end with an assistant turn"
                )
            msgs = msgs[:-1]
            self.counts["dropped_trailing_user"] += 1
        return {"messages": msgs}

    def _prompt_completion_row(self, row: dict) -> dict[str, Any]:
        prompt = _prompt(_require(row, "prompt"))
        completion = _require(row, "completion")
        if isinstance(completion, str):
            if not completion.strip():
                raise RowInvalid("completion is empty")
            completion = [{"role": "assistant", "content": completion}]
        else:
            completion = _messages(completion, "completion")
            if completion[0]["role"] != "assistant":
                raise RowInvalid(
                    f"completion must start with an assistant turn, not a {completion[0]['role']} turn"
                )
            _check_order(completion, "completion", first_role="assistant")
            if completion[-1]["role"] != "assistant":
                raise RowInvalid("completion must end with an assistant turn")
        return {"messages": prompt + completion}

    def _alpaca_row(self, row: dict) -> dict[str, Any]:
        instruction = _require(row, "instruction")
        if not isinstance(instruction, str):
            raise RowInvalid(f"instruction must be a string, got {_type_name(instruction)}")
        inp = row.get("input") or ""
        if not isinstance(inp, str):
            raise RowInvalid(f"input must be a string, got {_type_name(inp)}")
        output = _require(row, "output")
        if not isinstance(output, str):
            raise RowInvalid(f"output must be a string, got {_type_name(output)}")
        user = "\n\n".join(part for part in (instruction, inp) if part.strip())
        if not user.strip():
            raise RowInvalid("instruction and input are both empty")
        if not output.strip():
            raise RowInvalid("output is empty")
        msgs: list[dict[str, str]] = []
        system = row.get("system") or ""
        if not isinstance(system, str):
            raise RowInvalid(f"system must be a string, got {_type_name(system)}")
        if system.strip():
            msgs.append({"role": "system", "content": system})
        history = row.get("history") or []
        if not isinstance(history, list):
            raise RowInvalid(f"history must be a list of [user, assistant] pairs, got {_type_name(history)}")
        for i, pair in enumerate(history):
            if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
                raise RowInvalid(f"history[{i}] must be a [user, assistant] pair of strings")
            if not pair[0].strip() or not pair[1].strip():
                raise RowInvalid(f"history[{i}] has empty text")
            msgs += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        return {"messages": msgs}

    # preference -----------------------------------------------------------

    def _hh_turns(self, text: Any, what: str) -> list[dict[str, str]]:
        if not isinstance(text, str):
            raise RowInvalid(f"{what} must be a string, got {_type_name(text)}")
        parts = _HH_TAG.split(text)
        if len(parts) == 1:
            raise RowInvalid(f"{what} has no '\\n\\nHuman:' / '\\n\\nAssistant:' turns")
        if parts[0].strip():
            raise RowInvalid(f"{what} has text before its first '\\n\\nHuman:' turn")
        turns: list[dict[str, str]] = []
        segments = list(zip(parts[1::2], parts[2::2], strict=True))
        for i, (speaker, body) in enumerate(segments):
            role = "user" if speaker == "Human" else "assistant"
            body = body.strip()
            if not body and i < len(segments) - 1:
                self._row_fixes.add("dropped_empty_turns")
                continue
            if turns and turns[-1]["role"] == role:
                self._row_fixes.add("merged_turns")
                turns[-1]["content"] = "\n\n".join(p for p in (turns[-1]["content"], body) if p)
            else:
                turns.append({"role": role, "content": body})
        if turns[0]["role"] != "user":
            raise RowInvalid(f"{what} starts with an Assistant turn, not a Human turn")
        if turns[-1]["role"] != "assistant":
            raise RowInvalid(f"{what} ends with a Human turn, not an Assistant turn")
        for i, t in enumerate(turns[:-1]):
            if not t["content"]:
                raise RowInvalid(
                    f"{what} turn {i + 1} ({'Human' if t['role'] == 'user' else 'Assistant'}) is empty"
                )
        return turns

    def _hh_row(self, row: dict) -> dict[str, Any]:
        self._row_fixes: set[str] = set()
        chosen = self._hh_turns(_require(row, "chosen"), "chosen")
        rejected = self._hh_turns(_require(row, "rejected"), "rejected")
        self.counts.update(self._row_fixes)
        if chosen[:-1] != rejected[:-1]:
            n = next(
                (i for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1], strict=False)) if a != b),
                min(len(chosen), len(rejected)) - 1,
            )
            raise RowInvalid(
                "chosen and rejected are different conversations before their final Assistant turn "
                f"(chosen has {len(chosen)} turns, rejected {len(rejected)}; first difference at turn {n + 1})"
            )
        return self._preference_record(chosen[:-1], chosen[-1]["content"], rejected[-1]["content"])

    def _preference_record(self, prompt: list[dict[str, str]], chosen: str, rejected: str) -> dict[str, Any]:
        if not chosen.strip() and not rejected.strip():
            raise RowInvalid("chosen and rejected replies are both empty")
        if not chosen.strip() or not rejected.strip():
            self.counts["empty_reply"] += 1
        if chosen == rejected:
            self.counts["identical_replies"] += 1
        return {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }

    def _reply(self, value: Any, what: str, prompt: list[dict[str, str]] | None) -> str:
        if isinstance(value, str):
            return value
        msgs = _messages(value, what, allow_empty_content=True)
        if prompt is not None and len(msgs) > len(prompt) and msgs[: len(prompt)] == prompt:
            msgs = msgs[len(prompt) :]
            self.counts["reply_repeats_prompt"] += 1
        if len(msgs) != 1 or msgs[0]["role"] != "assistant":
            roles = ", ".join(m["role"] for m in msgs)
            raise RowInvalid(f"{what} must be a single assistant message (after the prompt), got [{roles}]")
        return msgs[0]["content"]

    def _preference_row(self, row: dict) -> dict[str, Any]:
        chosen_raw = _require(row, "chosen")
        rejected_raw = _require(row, "rejected")
        if "prompt" in row:
            prompt = _prompt(row["prompt"])
            chosen = self._reply(chosen_raw, "chosen", prompt)
            rejected = self._reply(rejected_raw, "rejected", prompt)
            return self._preference_record(prompt, chosen, rejected)
        # implicit prompt: the shared leading messages
        if not isinstance(chosen_raw, list) or not isinstance(rejected_raw, list):
            raise RowInvalid("missing field 'prompt' (without it, chosen and rejected must be message lists)")
        chosen_msgs = _messages(chosen_raw, "chosen", allow_empty_content=True)
        rejected_msgs = _messages(rejected_raw, "rejected", allow_empty_content=True)
        if len(chosen_msgs) < 2 or chosen_msgs[:-1] != rejected_msgs[:-1]:
            raise RowInvalid(
                "without 'prompt', chosen and rejected must be the same conversation up to their last message"
            )
        prompt = _prompt(chosen_raw[:-1], "prompt (the shared messages)")
        for what, msgs in (("chosen", chosen_msgs), ("rejected", rejected_msgs)):
            if msgs[-1]["role"] != "assistant":
                raise RowInvalid(f"{what} must end with an assistant message")
        return self._preference_record(prompt, chosen_msgs[-1]["content"], rejected_msgs[-1]["content"])

    # unpaired, prompt, text ---------------------------------------------

    def _kto_row(self, row: dict) -> dict[str, Any]:
        prompt = _prompt(_require(row, "prompt"))
        completion = self._reply(_require(row, "completion"), "completion", prompt)
        if not completion.strip():
            raise RowInvalid("completion is empty")
        label = _require(row, "label")
        if not isinstance(label, bool):
            raise RowInvalid(f"label must be true (desirable) or false (undesirable), got {_type_name(label)}")
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}], "label": label}

    def _prompts_row(self, row: dict) -> dict[str, Any]:
        return {"prompt": _prompt(_require(row, "prompt"))}

    def _text_row(self, row: dict) -> dict[str, Any]:
        text = _require(row, "text")
        if not isinstance(text, str):
            raise RowInvalid(f"text must be a string, got {_type_name(text)}")
        if not text.strip():
            raise RowInvalid("text is empty")
        return {"text": text}

    def notes(self) -> list[str]:
        c = self.counts
        out = []
        if c["dropped_trailing_user"]:
            out.append(
                f"dropped the trailing user turn (no reply to learn from) in {c['dropped_trailing_user']} rows"
            )
        if c["dropped_empty_turns"]:
            out.append(f"dropped empty turns before the final reply in {c['dropped_empty_turns']} rows")
        if c["merged_turns"]:
            out.append(f"merged consecutive same-speaker turns in {c['merged_turns']} rows")
        if c["empty_reply"]:
            out.append(f"{c['empty_reply']} rows have an empty chosen or rejected reply")
        if c["identical_replies"]:
            out.append(f"{c['identical_replies']} rows have identical chosen and rejected replies")
        if c["reply_repeats_prompt"]:
            out.append(f"removed the repeated prompt from {c['reply_repeats_prompt']} chosen/rejected lists")
        return out


# --------------------------------------------------------------------------- public API
