"""``html_to_text``: the same text as the HTMLParser-based implementation it replaced, and safe on junk.

Well-formed documents are generated with hypothesis from the elements the module knows about and
rendered twice: by ``html_to_text`` and by ``reference_html_to_text``, a verbatim copy of the former
implementation kept here as the oracle. They must agree exactly, once the one quirk the new one
fixes is fixed in the reference's text too (``reference``: spaces collapsed across tags). On
malformed input the former one showed markup as text where it gave up; there the new one only has
to be safe: no "<" from markup, nothing from inside a script or style.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from html.parser import HTMLParser
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailmerger_sender.html_text import html_to_text

# --- The reference: the former implementation, verbatim (do not "fix" it) ----------------------

_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BREAKS = frozenset({"br", "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "pre", "hr", "dl"}
)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _ReferenceCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0
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


def reference_html_to_text(html: str) -> str:
    """The former ``html_to_text`` (stdlib HTMLParser), the oracle for well-formed input."""
    collector = _ReferenceCollector()
    collector.feed(html)
    collector.close()
    lines = (line.strip() for line in "".join(collector.chunks).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"


# --- Generated well-formed documents --------------------------------------------------------------

# Deterministic, quick, no example database written into the repository.
CORPUS = settings(max_examples=300, derandomize=True, deadline=None, database=None)

# Pieces come from pools built once (a seeded sample where every combination would be too many), so
# that a piece is one draw: hypothesis is slow per draw.
WORDS = [
    "Hello", "Ada", "world", "42", ",", ".", "a > b", "x=y", "it's", '"quoted"', "Zoë", "-", "/",
    " ", "  ", "\n", "\n\n   ", "\t", " \t \n ",
    "&amp;", "&lt;", "&gt;", "&eacute;", "&#39;", "&#x27;", "&nbsp;", "&quot;", "&amp;lt;", "&copy",
    "&#8470;", "&notit;", "&#10;", "&", "&&",
]  # fmt: skip
SCRIPT_WORDS = [
    "var a = 1;", "if (a < b && c > d) {}", "</p>", "<p>x</p>", "<b>bold</b>", "&amp;", "\n", "</scrip>",
    "document.write('<a href=\"https://evil.test\">x</a>')", "p { color: red }", "<!-- x -->", "</styl>",
]  # fmt: skip
VALUES = ["x", "a b", "color: red; margin: 0", "x>y", "a&amp;b", "it's", 'say "hi"', "1/2", ""]
TARGETS = ["http://x.test/a", "https://x.test/?a=1&amp;b=2", "mailto:ada@x.test", "HTTPS://X.TEST"]
HREFS = [*TARGETS, "javascript:alert(1)", "/relative/path", "#top", "https://x.test/", ""]
Case = Callable[[str], str]
CASES: list[Case] = [str.lower, str.lower, str.upper, str.title]
# Elements with children; "mso" is the "downlevel-revealed" conditional comment of email templates.
NAMES = [
    "p", "div", "span", "b", "strong", "em", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table",
    "tr", "td", "blockquote", "section", "pre", "dl", "dt", "dd", "header", "footer", "article",
    "a", "a", "a", "head", "template", "noscript", "title", "mso",
]  # fmt: skip


def pool(every: list[str], size: int) -> list[str]:
    return random.Random(0).sample(every, min(size, len(every)))


def texts(words: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(["", *words, *pool([a + b for a, b in product(words, words)], 80)])


def written(name: str, values: list[str]) -> list[str]:
    """The valid ways to write the attribute: quoted or not, spaced or not, in any case."""
    every = []
    for value, quote, space, equals, case in product(values, "\"'", [" ", "  ", "\n"], ["=", " = "], CASES):
        if quote not in value:
            every.append(f"{space}{case(name)}{equals}{quote}{value}{quote}")
            if value and not re.search(r"[\s'\">]", value):
                every.append(f"{space}{case(name)}{equals}{value}")
    return every


TEXT = texts(WORDS)
SPACES = st.sampled_from(["", "", " ", "  ", "\n", "\n    ", "\t", " \t\n  \n"])
ATTRIBUTES = st.lists(
    st.sampled_from(
        [
            " hidden",
            " HIDDEN",
            *pool([a for n in ["class", "style", "title"] for a in written(n, VALUES)], 80),
        ]
    ),
    max_size=2,
).map("".join)
LINKS = st.sampled_from(
    [("", None), *((a, href) for href in HREFS for a in pool(written("href", [href]), 6))]
)
VOIDS = st.one_of(
    st.builds(
        "<{}{}{}".format,
        st.sampled_from([case(tag) for tag in ["br", "hr", "img", "meta", "wbr"] for case in CASES]),
        ATTRIBUTES,
        st.sampled_from([">", "/>", " />"]),
    ),
    st.builds("<{}{}/>".format, st.sampled_from(["p", "div", "li", "P"]), ATTRIBUTES),  # XHTML-style empty
)


def raw_text(tag: str, case: Case, attrs: str, content: str, end_case: Case, space: str) -> str:
    """A script or style: anything but its own end tag in it, which may be in another case."""
    return f"<{case(tag)}{attrs}>{content}</{end_case(tag)}{space}>"


RAW_TEXTS = st.builds(
    raw_text,
    st.sampled_from(["script", "style"]),
    st.sampled_from(CASES),
    ATTRIBUTES,
    texts(SCRIPT_WORDS),
    st.sampled_from(CASES),
    st.sampled_from(["", " ", "\n"]),
)
COMMENTS = st.sampled_from(
    [f"<!--{body}-->" for body in ["", " c ", "[if mso]><p>x</p><![endif]", " a > b ", "<p>hidden</p>", "-x"]]
)
LEAVES = st.one_of(TEXT, TEXT, VOIDS, RAW_TEXTS, COMMENTS)


@st.composite
def nodes(draw: st.DrawFn, depth: int) -> str:
    """Siblings: text and leaves, and elements with children of their own (up to ``depth`` deep)."""
    node = st.one_of(LEAVES, element(depth - 1)) if depth else LEAVES
    return draw(SPACES).join(draw(st.lists(node, max_size=6)))


@st.composite
def element(draw: st.DrawFn, depth: int) -> str:
    name = draw(st.sampled_from(NAMES))
    tag = draw(st.sampled_from(CASES))(name)
    if name == "title":  # text only: newer parsers read it as text, as browsers do
        return f"<{tag}>{draw(TEXT)}</{tag}>"
    inner = draw(nodes(depth))
    if name == "mso":
        return f"<!--[if !mso]><!-->{inner}<!--<![endif]-->"
    attrs = draw(ATTRIBUTES)
    if name == "a":
        href_attribute, href = draw(LINKS)
        attrs += href_attribute
        if href in TARGETS and draw(st.booleans()):  # the text already is the target
            inner = draw(SPACES) + href.removeprefix("mailto:").replace("&amp;", "&") + draw(SPACES)
    end = f"</{tag}>" if name not in {"p", "li", "td", "tr", "dt", "dd"} or draw(st.booleans()) else ""
    return f"<{tag}{attrs}>{inner}{end}"


@st.composite
def documents(draw: st.DrawFn) -> str:
    body = draw(nodes(4))
    if draw(st.booleans()):
        head = f"<head><title>{draw(TEXT)}</title>{draw(RAW_TEXTS)}<meta charset=utf-8></head>"
        body = f"<html>{draw(SPACES)}{head}{draw(SPACES)}<body{draw(ATTRIBUTES)}>{body}</body></html>"
    return draw(st.sampled_from(["", "<!DOCTYPE html>\n", '<?xml version="1.0"?>'])) + body


@pytest.mark.slow
@CORPUS
@given(documents())
def test_html_to_text_matches_the_reference_on_well_formed_html(html: str) -> None:
    """Every generated well-formed document gives exactly the text the HTMLParser version gave."""
    assert html_to_text(html) == reference(html)


def reference(html: str) -> str:
    """The reference's text with its quirk fixed: it collapsed spaces per run of text, so "a <b> c"
    kept two; ``html_to_text`` collapses them per line."""
    return "\n".join(re.sub(r"[ \t\r\f\v]+", " ", line) for line in reference_html_to_text(html).split("\n"))


def test_html_to_text_collapses_spaces_across_tags() -> None:
    html = "<p>Dear <b> Ada </b> ,\n  see <a href='https://x.test'> the  report </a> .</p>"
    assert reference_html_to_text(html) == "Dear  Ada  , see  the report  (https://x.test) .\n"
    assert html_to_text(html) == "Dear Ada , see the report (https://x.test) .\n"


# --- Malformed input: safe, whatever the reference did -------------------------------------------

# Where every "<" opens markup and no text decodes to "<", any "<" in the output came from markup.
# Anything tagged SECRET is script or style content; MARKUP is inside a tag, comment or declaration.
SOUND = st.sampled_from(
    [
        "text ", "&amp; ", "\n", "<p>", "</p>", "<P>", "</P>", "<br>", "<BR/>", "<li>", "</ul>", "<b>",
        "<a href=https://x.test/>", "<a href='mailto:ada@x.test'>", "<a href=\"javascript:MARKUP\">", "</a>",
        "<p title=it's>", "<p title='MARKUP>'>", "<p class=MARKUP data-x=\"a\">", "<img alt=MARKUP/>",
        "<p =MARKUP>", "</ p>", "</p MARKUP>", "</>", "<!>", "<!--->", "<!-->", "<!-- MARKUP -->",
        "<![if mso]>", "<![foo]>", "<!DOCTYPE MARKUP>", "<?MARKUP?>", "<![CDATA[MARKUP]]>", "<head>",
        "</head>", "</script>", "</style>", "<script>SECRET</script>", "<SCRIPT>if (a</p>b) SECRET</SCRIPT>",
        "<script/>SECRET</script>", "<style type=text/css>SECRET</style>",
        "<script src='x>y'>SECRET</script >",
    ]
)  # fmt: skip
# The one construct that may be cut off by the end of the input.
UNTERMINATED = st.sampled_from(
    [
        "", "<p", "<P CLASS=MARKUP", "<a href='https://x.test/MARKUP", '<p title="MARKUP>', "</p", "</",
        "<!-- MARKUP", "<!--", "<!", "<!DOCTYPE MARKUP", "<?MARKUP", "<![CDATA[MARKUP", "<script>SECRET",
        "<style>SECRET</p>", "<script>SECRET</script", "<br/",
    ]
)  # fmt: skip


@CORPUS
@given(st.lists(SOUND, max_size=12).map("".join), UNTERMINATED)
def test_html_to_text_never_shows_markup_or_script_of_malformed_html(body: str, tail: str) -> None:
    """No "<", nothing from inside markup, scripts or styles, however the input is broken."""
    text = html_to_text(body + tail)
    assert "<" not in text
    assert "MARKUP" not in text
    assert "SECRET" not in text


def test_html_to_text_reads_uppercase_tags() -> None:
    """Tag names are case-insensitive, as the parser's were: <P> is a paragraph, <SCRIPT> a script."""
    html = "<P CLASS=x>One<BR>two</P><SCRIPT>alert(1)</script><Style>p{}</STYLE><P>Three</P>"
    assert html_to_text(html) == reference(html) == "One\ntwo\n\nThree\n"


def test_html_to_text_reads_unquoted_and_single_quoted_hrefs() -> None:
    """An href may be unquoted (even ending in "/", which does not make <a> empty) or single-quoted."""
    html = "<a href=https://x.test/a>A</a> <a href='mailto:ada@x.test'>mail</a> <a href=https://x.test/>B</a>"
    expected = "A (https://x.test/a) mail (ada@x.test) B (https://x.test/)\n"
    assert html_to_text(html) == reference(html) == expected


def test_html_to_text_hides_a_script_that_contains_an_end_tag() -> None:
    """A script's "</p>" is script text, not markup: nothing of it shows, and nothing ends early."""
    html = "<p>a</p><script>document.write('</p><p>x')</script><SCRIPT type=x>s = '</p>'</SCRIPT><p>b</p>"
    assert html_to_text(html) == reference(html) == "a\n\nb\n"


def test_html_to_text_hides_an_unterminated_comment() -> None:
    """A comment that is never closed runs to the end, as in a browser (the parser showed it as text)."""
    assert html_to_text("<p>a</p><!-- never closed <p>b</p>") == "a\n"
    assert reference_html_to_text("<p>a</p><!-- never closed <p>b</p>") == "a\n\n<!-- never closed <p>b\n"


def test_html_to_text_keeps_a_bare_less_than_sign() -> None:
    """A "<" that starts no tag is text, as in a browser and as before."""
    for html, expected in [("a < b", "a < b\n"), ("1 <2 and 3<=4", "1 <2 and 3<=4\n"), ("a <", "a <\n")]:
        assert html_to_text(html) == reference(html) == expected


def test_html_to_text_decodes_entities_exactly_once() -> None:
    """&amp;lt; is "&lt;", in text and in a link target alike; never "<"."""
    html = '<p>&amp;lt;b&amp;gt;</p><a href="https://x.test/?q=&amp;lt;">q</a>'
    assert html_to_text(html) == reference(html) == "&lt;b&gt;\n\nq (https://x.test/?q=&lt;)\n"


def test_html_to_text_hides_what_an_unterminated_tag_or_value_swallows() -> None:
    """A tag or quoted value cut off by the end hides the rest (the parser showed it, "<" and all)."""
    assert html_to_text('<p>a</p><p title="open>b</p>') == "a\n"
    assert html_to_text("<p>a</p><a href=x") == "a\n"
    assert reference_html_to_text("<p>a</p><a href=x") == "a\n\n<a href=x\n"


def test_html_to_text_reads_what_the_parser_choked_on_or_showed() -> None:
    """<![foo]> made the parser raise; <script/> starts a script, as in a browser (the parser showed it)."""
    assert html_to_text("<![foo]><p>a</p>") == "a\n"
    with pytest.raises(AssertionError, match="unknown status keyword"):
        reference_html_to_text("<![foo]><p>a</p>")
    assert html_to_text("<script/>alert(1)</script><p>a</p>") == "a\n"
    assert reference_html_to_text("<script/>alert(1)</script><p>a</p>") == "alert(1)\n\na\n"


def test_html_to_text_closes_comments_as_the_parser_did() -> None:
    """A comment ends at the first "-->" after "<!--", so "<!-->" opens one (and "<!---->" is empty)."""
    for html, expected in [
        ("<p>a<!-->b-->c</p>", "ac\n"),
        ("<p>a<!---->b</p>", "ab\n"),
        ("a<!-- x -- >b", "ab\n"),
    ]:
        assert html_to_text(html) == reference(html) == expected
