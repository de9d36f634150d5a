"""Prompt languages are labelled only when detection is reliable (the leaderboard's tabs depend on it)."""

import pytest

from arena.services import _detect_language


@pytest.mark.parametrize("text", [
    "Write a haiku about autumn",  # langdetect says Estonian (0.71)
    "hi",                          # langdetect says Swahili (0.99999)
    "Как дела?",                   # langdetect says Macedonian
    "Name three colours.",
])
def test_short_or_uncertain_prompts_get_no_language(text):
    assert _detect_language(text) == ""


@pytest.mark.parametrize(("text", "code"), [
    ("What is the capital of France and why is it famous?", "en"),
    ("Explique-moi la photosynthèse en termes simples, s'il te plaît.", "fr"),
    ("Escribe un poema sobre el mar", "es"),
    ("Расскажи мне о погоде в Москве сегодня", "ru"),
    ("今日はいい天気ですね", "ja"),
])
def test_longer_prompts_are_labelled(text, code):
    assert _detect_language(text) == code
