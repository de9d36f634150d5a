"""Typed values of recipe configs (standard library only): checking a JSON value against a field's
type hint, coercing a ``key=value`` override string, and describing ranges and types in the
messages a person reads. Used by :mod:`training.recipes.config`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["check_type", "coerce", "range_text"]

ALL_LINEAR = "all-linear"  # PEFT's "every linear layer" (training.recipes.config uses the same)


def range_text(meta: Mapping[str, Any]) -> str:
    lo = "(" if meta["lo_open"] else "["
    hi = ")" if meta["hi_open"] else "]"
    text = f"{lo}{_num(meta['lo'])}, {_num(meta['hi'])}{hi}"
    if meta["also"]:
        text += " or " + " or ".join(str(a) for a in meta["also"])
    return text


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_type(value: Any, tp: Any) -> Any:
    """Validate a JSON value against a field type (no string coercion). Returns the value."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {_json_type(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"expected an integer, got {_json_type(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {value!r}")
            return float(value)
        raise ValueError(f"expected a number, got {_json_type(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {_json_type(value)}")
    if tp == list[str]:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError(f"expected a list of strings, got {_json_type(value)}")
    if tp == str | list[str]:
        if isinstance(value, str):
            return value
        return check_type(value, list[str])
    raise TypeError(f"unsupported config field type {tp!r}")  # pragma: no cover


def coerce(raw: str, tp: Any) -> Any:
    """Parse a ``--set`` string into a field's type."""
    if tp is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if tp is int:
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if tp is float:
        try:
            value = float(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw!r}")
        return value
    if tp is str:
        return raw
    if tp == list[str] or tp == str | list[str]:
        if tp == str | list[str] and raw == ALL_LINEAR:
            return raw
        if raw.startswith("["):
            try:
                return check_type(json.loads(raw), list[str])
            except json.JSONDecodeError:
                raise ValueError(f"expected a JSON list of strings, got {raw!r}") from None
        return [part.strip() for part in raw.split(",") if part.strip()]
    raise TypeError(f"unsupported config field type {tp!r}")  # pragma: no cover


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value!r}".lower()
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    return {list: "a list", tuple: "a list", dict: "an object"}.get(type(value), type(value).__name__)
