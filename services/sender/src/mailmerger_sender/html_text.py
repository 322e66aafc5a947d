"""A plain-text rendering of an HTML body, for the text/plain alternative. Pure.

Safe by construction: only character data is ever collected, so no markup, script or style reaches
the text; entities are decoded once; links keep their target after their text. It is a readable
fallback, not a layout engine.

One compiled regular expression splits the input into tokens: several times cheaper than the
``html.parser.HTMLParser`` this replaced, which is pure Python per tag. On well-formed HTML the text
is the same as that parser's, except that whitespace is collapsed across tags, not only within each
run of text (the parser made "a <b> c" read "a  c"). On malformed input, where the parser gave up
and showed the markup as text, this does what a browser does: an unterminated tag, comment or
quoted attribute value hides the rest of the input, and ``<script/>`` starts a script (the parser
showed its content).
"""

from __future__ import annotations

import re
from html import unescape

# Elements whose content is never text a reader should see.
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript"})
# Elements that start a new line (a paragraph gets a blank line before and after it).
_BREAKS = frozenset({"br", "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "pre", "hr", "dl"}
)
# What a start tag writes; a list item is a line that starts with a dash.
_OPENING = dict.fromkeys(_PARAGRAPHS, "\n\n") | dict.fromkeys(_BREAKS, "\n") | {"li": "\n- "}

# Every alternative that starts with "<" matches whatever follows it (to the end of the input if it is
# never closed), so a "<" is text only where a browser shows it too: "a < b". In a start tag a quote
# opens a value only right after "=", so neither "title='a>b'" nor "title=it's" ends the tag early;
# an unquoted value may end in "/" (<a href=x/> is not empty). ASCII: HTML's letters and spaces.
_TOKENS = re.compile(
    r"""
      (?P<text>[^<]+|<(?![a-z!?/]))
    | </\s*(?P<end>[a-z][^\t\n\r\f\ />]*)?[^>]*>?
    | <script(?=[\s/>])[^>]*>.*?(?:</\s*script\s*>|\Z)  # never shown: skipped whole
    | <style(?=[\s/>])[^>]*>.*?(?:</\s*style\s*>|\Z)
    | <(?P<start>[a-z][^\t\n\r\f\ />]*)
      (?P<attrs>(?:[^\s/>][^\s/>=]*+(?:\s*+=\s*+(?:"[^"]*+"?|'[^']*+'?|[^\s>]*+))?|\s++|/(?!>))*+)
      (?P<empty>/?)>?
    | <!--.*?(?:--\s*>|\Z)                               # a comment
    | <!\[CDATA\[.*?(?:]]>|\Z)
    | <[!?][^>]*>?                                       # <!doctype>, <![if mso]>, <?xml?>
    """,
    re.ASCII | re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_ATTRS = re.compile(r"""([^\s/>][^\s/>=]*)(?:\s*=\s*(?:"([^"]*)"?|'([^']*)'?|([^\s>]*)))?""", re.ASCII)
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def _href(attrs: str) -> str | None:
    """The decoded value of the last href attribute, as the parser's ``dict(attrs)`` kept it."""
    href = None
    for name, double, single, bare in _ATTRS.findall(attrs):
        if name.lower() == "href":
            href = unescape(double or single or bare)
    return href


def _one_space(line: str) -> str:
    # Most lines need nothing: cheaper to look than to run the regex on each.
    if "  " in line or not line.isprintable():
        line = _SPACES.sub(" ", line)
    return line.strip()


def html_to_text(html: str) -> str:
    """The readable text of ``html``: paragraphs and line breaks kept, whitespace collapsed."""
    chunks: list[str] = []
    hidden = 0
    links: list[tuple[str | None, int]] = []  # the open links: their target, where their text starts
    for text, end, tag, attrs, empty in _TOKENS.findall(html):
        if text:
            if hidden:
                continue
            # A newline in text is a space; runs of spaces are collapsed once per line, at the end,
            # across tags too ("a <b> c" reads "a c", as a browser shows it).
            chunks.append(unescape(text).replace("\n", " "))
        elif tag:
            tag = tag.lower()
            if empty:  # <br/>: a line, and nothing opens
                if tag in _OPENING:
                    chunks.append("\n")
            elif tag in _HIDDEN:
                hidden += 1
            elif tag == "a":
                links.append((_href(attrs), len(chunks)))
            elif tag in _OPENING:
                chunks.append(_OPENING[tag])
        elif end:
            end = end.lower()
            if end in _HIDDEN:
                hidden = max(hidden - 1, 0)
            elif end in _PARAGRAPHS:
                chunks.append("\n\n")
            elif end == "a" and links:
                href, start = links.pop()
                if href and href.startswith(_LINK_SCHEMES):
                    target = href.removeprefix("mailto:")
                    if "".join(chunks[start:]).strip() != target:
                        chunks.append(f" ({target})")
    # Lines stripped with their spaces collapsed, and blocks set apart by exactly one blank line.
    lines = "\n".join([_one_space(line) for line in "".join(chunks).split("\n")])
    blocks = [block.strip("\n") for block in lines.split("\n\n")]
    return "\n\n".join([block for block in blocks if block]) + "\n"
