from arena.identity import find_identity_words

WORDS = ["openai", "claude", "llama", "gpt-4", "qwen", "01.ai"]


class TestFindIdentityWords:
    def test_it_finds_names_in_answers_case_insensitively(self):
        assert find_identity_words(["I am Claude, made by Anthropic."], WORDS) == ["claude"]
        assert find_identity_words(["Built on LLaMA and GPT-4 ideas"], WORDS) == ["gpt-4", "llama"]

    def test_it_matches_whole_words_only(self):
        assert find_identity_words(["The llamas grazed; a reopenaire is not a word"], WORDS) == []

    def test_clean_answers_are_not_flagged(self):
        assert find_identity_words(["Paris is the capital of France."], WORDS) == []
