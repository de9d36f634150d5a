from html.parser import HTMLParser

import pytest

from arena.markdown import render_markdown

SAFE_TAGS = {"p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "ul", "ol", "li",
             "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a"}
SAFE_ATTRS = {"href", "title", "class", "align", "start", "rel"}


class ElementCollector(HTMLParser):
    """The real elements and attributes a browser would build from the HTML (escaped text is not one)."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict]]:
    collector = ElementCollector()
    collector.feed(html)
    return collector.elements

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<svg onload=alert(1)>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "![tracker](https://evil.example/pixel.png)",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "```html\n</code></pre><script>alert(1)</script>\n```",
    "<style>body{display:none}</style>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
]


class TestRenderMarkdown:
    def test_it_renders_code_blocks_lists_and_emphasis(self):
        html = render_markdown("# Title\n\n- one\n- **two**\n\n```python\nprint('hi')\n```")
        assert "<h1>Title</h1>" in html
        assert "<li><strong>two</strong></li>" in html
        assert '<pre><code class="language-python">print(\'hi\')\n</code></pre>' in html

    @pytest.mark.parametrize("payload", HOSTILE)
    def test_hostile_payloads_come_out_inert(self, payload):
        for tag, attrs in elements(render_markdown(payload)):
            assert tag in SAFE_TAGS, tag
            assert set(attrs) <= SAFE_ATTRS, attrs
            href = (attrs.get("href") or "").strip().lower()
            assert not href or href.startswith(("http://", "https://", "mailto:")), href

    def test_links_get_safe_rel(self):
        html = render_markdown("[docs](https://example.com)")
        assert 'href="https://example.com"' in html
        assert "noopener" in html and "nofollow" in html
