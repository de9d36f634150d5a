import pytest

from arena.identity import family_of, find_identity_words, model_identity_words

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
