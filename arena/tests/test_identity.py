import pytest

from arena.quality.identity import family_of, find_identity_words, model_identity_words

WORDS = ["openai", "claude", "llama", "gpt-4", "qwen", "01.ai"]


class TestFindIdentityWords:
    def test_it_finds_names_in_answers_case_insensitively(self):
        assert find_identity_words(["I am Claude, made by Anthropic."], WORDS) == ["claude"]
        assert find_identity_words(["Built on LLaMA and GPT-4 ideas"], WORDS) == ["gpt-4", "llama"]

    def test_it_matches_whole_words_only(self):
        assert find_identity_words(["The llamas grazed; a reopenaire is not a word"], WORDS) == []

    def test_clean_answers_are_not_flagged(self):
        assert find_identity_words(["Paris is the capital of France."], WORDS) == []


class TestVersionedNames:
    """The strings the issue measured slipping through the old whole-word rule."""

    WORDS = ["smollm", "gpt-4", "qwen", "gemma", "phi", "yi"]

    @pytest.mark.parametrize(
        "answer,found",
        [
            ("I am SmolLM2, a small assistant.", ["smollm"]),
            ("As GPT-4o, I can help.", ["gpt-4"]),
            ("I'm Qwen2.5 from Alibaba Cloud.", ["qwen"]),
            ("Gemma3 here!", ["gemma"]),
            ("My model id is smollm2-135m-instruct.", ["smollm"]),
        ],
    )
    def test_version_and_size_suffixes_still_match(self, answer, found):
        assert find_identity_words([answer], self.WORDS) == found

    def test_ordinary_words_that_start_like_a_name_do_not(self):
        assert find_identity_words(["Philosophy yields gemmas? No: a reqwen and a smollmish cat."], self.WORDS) == []


class TestModelIdentityWords:
    def test_names_engine_ids_organization_and_family_are_all_words(self):
        words = model_identity_words(["smollm2-test-a", "HuggingFaceTB/SmolLM2-135M-Instruct"], "Hugging Face")
        assert {"smollm2-test-a", "huggingfacetb/smollm2-135m-instruct", "smollm2-135m-instruct", "smollm",
                "hugging face"} <= words

    def test_generic_leading_words_are_not_families(self):
        assert family_of("model-7") == "" and family_of("tiny-llama") == "" and family_of("gemma-3-270m") == "gemma"


class TestObfuscatedNames:
    """Names written to slip past a literal match (issue 19): each must still be found."""

    WORDS = ["smollm", "gemma", "qwen", "gpt-4", "claude", "hugging face", "phi", "yi", "01.ai"]

    @pytest.mark.parametrize(
        "answer,found",
        [
            ("I am S-m-o-l-L-M, a helpful assistant.", ["smollm"]),
            ("I am S m o l L M.", ["smollm"]),
            ("I am Smol\u200bLM2.", ["smollm"]),  # zero-width space
            ("I am Smol\u200dL\u2060M.", ["smollm"]),  # zero-width joiner, word joiner
            ("I am Sm\u00adolLM.", ["smollm"]),  # soft hyphen
            ("I am \uff33\uff4d\uff4f\uff4c\uff2c\uff2d.", ["smollm"]),  # fullwidth
            ("call me s.m.o.l.l.m", ["smollm"]),
            ("I'm Smol_LM, or Smol LM if you like.", ["smollm"]),
            ("I am S\u0336m\u0336o\u0336l\u0336LM", ["smollm"]),  # combining strike-through marks
            ("Ｇｅｍｍａ３ here", ["gemma"]),
            ("I am G E M M A.", ["gemma"]),
            ("Q-w-e-n speaking", ["qwen"]),
            ("Built like G.P.T 4 and GPT 4o", ["gpt-4"]),
            ("From Hugging-Face and HuggingFace", ["hugging face"]),
            ("\u202eClaude\u202c says hello", ["claude"]),  # bidi override around the name
            ("I am C L A U D E", ["claude"]),
            ("p-h-i is my name", ["phi"]),
            ("Made by 01 AI", ["01.ai"]),
        ],
    )
    def test_each_variant_is_found(self, answer, found):
        assert find_identity_words([answer], self.WORDS) == found

    @pytest.mark.parametrize(
        "answer",
        [
            "Let x_i and y_i be the samples; the slope is sum(x_i * y_i) / n.",
            "Plot the points x, y, i and j on the same axes.",
            "Yes, I can help. Why? I think so.",
            "The golden ratio is about 1.618; philosophy and graphics aside.",
            "A small language model runs on a laptop: small LMs are cheap.",
            "The gem market; Gemmas are not a word.",
            "Claudette and Claudine went to the market.",
            "Photographs, graphs, phones: ph. I see.",
            "Hug gingerly, face forward; a hugging, facing pair.",
            "import numpy as np\nfor i, y in enumerate(ys):\n    print(y, i)",
        ],
    )
    def test_ordinary_answers_are_not_flagged(self, answer):
        assert find_identity_words([answer], self.WORDS) == []

    def test_a_name_split_over_two_lines_or_a_long_gap_is_not_joined(self):
        assert find_identity_words(["The gem\nma was there; qw ---- en"], self.WORDS) == []


class TestGeneratedObfuscations:
    """Random mixes of the obfuscations, as an adaptive attacker would try them."""

    @staticmethod
    def disguise(name: str, draw) -> str:
        from hypothesis import strategies as st

        separator = draw(st.sampled_from(["", "-", ".", "_", "*", "·", " ", " - ", "\u200b", "\u2060", "\u00ad"]))
        letters = []
        for ch in name:
            if draw(st.booleans()):
                ch = ch.upper()
            if draw(st.booleans()) and ch.isascii() and ch.isalnum():
                ch = chr(ord(ch) + 0xFEE0)  # its fullwidth form
            letters.append(ch + draw(st.sampled_from(["", "\u200d", "\ufeff", "\u034f"])))
        return separator.join(letters)

    @pytest.mark.parametrize("name", ["smollm", "gemma", "claude", "mistral"])
    def test_every_mix_is_found(self, name):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        @settings(max_examples=150, deadline=None)
        @given(st.data())
        def check(data):
            text = f"Hello! I am {self.disguise(name, data.draw)}, your assistant."
            assert find_identity_words([text], [name]) == [name], text

        check()
