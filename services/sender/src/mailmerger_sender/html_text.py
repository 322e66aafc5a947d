"""A plain-text rendering of an HTML body, for the text/plain alternative. Pure.

Safe by construction: the parser only collects character data, so no markup, script or style ever
reaches the text; entities are decoded once; links keep their target after their text. It is a
readable fallback, not a layout engine.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never text a reader should see.
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript"})
# Elements that start a new line (a paragraph gets a blank line before and after it).
_BREAKS = frozenset({"br", "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "pre", "hr", "dl"}
)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0
        # The open links: their target and where their text starts in ``chunks``.
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_depth += 1
        elif tag in _PARAGRAPHS:
            self.chunks.append("\n\n")
        elif tag in _BREAKS:
            self.chunks.append("\n")
        if tag == "li":
            self.chunks.append("- ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.chunks)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS or tag in _PARAGRAPHS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden_depth = max(self._hidden_depth - 1, 0)
        elif tag in _PARAGRAPHS:
            self.chunks.append("\n\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            if href and href.startswith(("http://", "https://", "mailto:")):
                target = href.removeprefix("mailto:")
                if "".join(self.chunks[start:]).strip() != target:
                    self.chunks.append(f" ({target})")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.chunks.append(_SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str) -> str:
    """The readable text of ``html``: paragraphs and line breaks kept, whitespace collapsed."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (line.strip() for line in "".join(collector.chunks).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"
