"""Tests of the per-answer style counts (pure, no database)."""

from __future__ import annotations

from dataclasses import astuple

import pytest

from arena import ratings
from arena.style import STYLE_FEATURES, StyleCounts, approx_tokens, strip_code, style_counts

ANSWER = """# Plan

Here is **the plan** and __another bold__ bit, plus a lone * star.

## Steps

1. First step
2. Second step with **bold**
   - nested bullet
   * another nested bullet
+ plus bullet

* * *

```python
# not a header
- not a list item
x = "**not bold**"
```

~~~
## also not a header
~~~

Call `f(**kwargs**)` or ``a `**b**` c`` inline.
#hashtag is not a header
    ### indented is not an ATX header here
"""


def test_counts_on_sample_markdown() -> None:
    counts = style_counts(ANSWER)
    assert counts.headers == 2  # "# Plan", "## Steps"
    assert counts.lists == 5  # 1., 2., -, *, + (the "* * *" rule and code lines excluded)
    assert counts.bold == 3  # **the plan**, __another bold__, **bold**
    assert astuple(counts)[1:] == (2, 5, 3)
    # Tokens cover the whole answer, code included; counted by hand: # Plan Say * * hi * * to ` x ` .
    assert astuple(style_counts("# Plan\n\nSay **hi** to `x`.")) == (13, 1, 0, 1)


def test_code_is_removed_before_counting() -> None:
    prose = strip_code(ANSWER)
    assert "# not a header" not in prose and "also not" not in prose
    assert "not bold" not in prose and "kwargs" not in prose
    assert "Call " in prose and "inline." in prose
    # An unclosed fence runs to the end of the answer.
    assert astuple(style_counts("# Title\n```\n# inside\n- item\n**b**\n"))[1:] == (1, 0, 0)
    # A closing fence must use the same character and be at least as long.
    text = "````\n```\n# still code\n````\n# header"
    assert style_counts(text).headers == 1


def test_simple_cases() -> None:
    assert style_counts("") == StyleCounts(0, 0, 0, 0)
    assert astuple(style_counts("Plain text, no markdown.")) == (6, 0, 0, 0)  # 4 words + ',' + '.'
    assert style_counts("###### six\n####### seven").headers == 1  # at most 6 '#'
    assert style_counts("-no space\n-\n- yes").lists == 2  # an empty item counts, "-no" does not
    assert style_counts("**a** **b**\n**not\nbold**").bold == 2  # bold stays on one line


def test_real_token_count_overrides_the_approximation() -> None:
    assert style_counts("# hi", tokens=57).tokens == 57
    with pytest.raises(ValueError):
        style_counts("x", tokens=-1)


def test_approx_tokens() -> None:
    assert approx_tokens("Hello, world!") == 4
    assert approx_tokens("don't stop") == 4  # don ' t stop
    assert approx_tokens("  \n\t ") == 0


def test_feature_order_matches_ratings_module() -> None:
    assert STYLE_FEATURES == ratings.STYLE_FEATURE_NAMES
