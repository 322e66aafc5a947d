"""Building messages: headers, encodings, structure, refusals, and the HTML-to-text fallback."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailmerger_sender.headers import Mailbox, mailbox, parse_mailbox
from mailmerger_sender.html_text import html_to_text
from mailmerger_sender.mime import (
    AttachmentBody,
    Content,
    InvalidMessage,
    build_message,
    minimum_size,
)
from mailmerger_shared import contracts as c

DATE = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
POLICY = policy.SMTP  # the email package as it writes mail


def command(**overrides: Any) -> c.SendEmail:
    fields: dict[str, Any] = {
        "message_id": 1,
        "user_id": 1,
        "account_id": 1,
        "from_address": "ada@gmail.test",
        "to": ["Bob <bob@example.com>"],
        "subject": "Hello",
        "html": "<p>Hi Bob</p>",
        "rfc_message_id": "<mm-1@mailmerger.test>",
    }
    fields.update(overrides)
    return c.SendEmail(**fields)


def parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def build(attachments: list[AttachmentBody] | None = None, **overrides: Any) -> bytes:
    return build_message(command(**overrides), sender_name=None, attachments=attachments or [], date=DATE)


def test_headers_carry_the_deterministic_message_id_and_date() -> None:
    """Message-ID is the command's rfc_message_id, Date the given time, lines end in CRLF."""
    raw = build()
    message = parse(raw)
    assert message["Message-ID"] == "<mm-1@mailmerger.test>"
    assert message["Date"].datetime == DATE
    assert message["From"] == "ada@gmail.test"
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_message_id_without_brackets_gets_them() -> None:
    """A bare id is written as <id>, the same on every attempt."""
    assert parse(build(rfc_message_id="mm-2@mailmerger.test"))["Message-ID"] == "<mm-2@mailmerger.test>"


def test_sender_name_comes_from_the_command_then_the_account() -> None:
    """from_name wins; without it the account's display name (from the token) is used."""
    assert parse(build(from_name="Ada L."))["From"].addresses[0].display_name == "Ada L."
    raw = build_message(command(), sender_name="Ada Lovelace", attachments=[], date=DATE)
    assert parse(raw)["From"].addresses[0].display_name == "Ada Lovelace"


def test_html_only_message_is_multipart_alternative_with_derived_text() -> None:
    """text/plain (from the HTML) then text/html, in one multipart/alternative."""
    message = parse(build(html="<p>Hi <b>Bob</b></p><p>Bye</p>"))
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert text.get_content().replace("\r\n", "\n") == "Hi Bob\n\nBye\n"
    assert html.get_content_type() == "text/html"


def test_given_text_body_is_used_as_is() -> None:
    """A command's own text body is not replaced by the derived one."""
    text, _ = parse(build(text="Plain words.")).iter_parts()
    assert text.get_content().replace("\r\n", "\n") == "Plain words.\n"


def test_text_only_message_is_a_single_part() -> None:
    """Without HTML the message is one text/plain part."""
    message = parse(build(html=None, text="Just text"))
    assert message.get_content_type() == "text/plain"


def test_non_ascii_header_values_are_encoded_and_decode_back() -> None:
    """Names and subjects in any script are RFC 2047 words in the raw message, exact once decoded."""
    raw = build(from_name="Zoë 山田", to=["Jürgen Groß <j@example.com>"], subject="Grüße 🎉 — café")
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    message = parse(raw)
    assert message["From"].addresses[0].display_name == "Zoë 山田"
    assert message["To"].addresses[0].display_name == "Jürgen Groß"
    assert message["Subject"] == "Grüße 🎉 — café"


def test_non_ascii_filename_uses_rfc_2231() -> None:
    """An attachment's non-ASCII filename is a filename* parameter and decodes back exactly."""
    body = AttachmentBody("Résumé 履歴書.pdf", "application/pdf", Content(b"%PDF"))
    raw = build([body])
    assert b"filename*=utf-8''" in raw
    attachment = next(parse(raw).iter_attachments())
    assert attachment.get_filename() == "Résumé 履歴書.pdf"
    assert attachment.get_content() == b"%PDF"


def test_display_names_with_specials_stay_one_address() -> None:
    """Commas, quotes and angle brackets in a display name cannot add a recipient."""
    raw = build(
        to=['"Doe, Jane <x@evil.test>" <jane@example.com>'], from_name='Ada "The Boss", <a@evil.test>'
    )
    message = parse(raw)
    assert [a.addr_spec for a in message["To"].addresses] == ["jane@example.com"]
    assert [a.addr_spec for a in message["From"].addresses] == ["ada@gmail.test"]


@pytest.mark.parametrize(
    "hostile",
    [
        {"subject": "a\r\nBcc: x@evil.test"},
        {"subject": "a\r\n Bcc: x@evil.test"},
        {"subject": "a\rb"},
        {"subject": "a\x00b"},
        {"subject": "a\u2028Bcc: x@evil.test"},
        {"subject": "a\u2029b"},
        {"subject": "a\x85b"},
        {"subject": "a\x1bb"},
        {"subject": "a\x7fb"},
        {"subject": "a\x9bb"},
        {"subject": "a\ud800b"},
        {"from_name": "a\nb"},
        {"from_name": "a\u2028b"},
        {"to": ['"a\u2029b" <a@example.com>']},
        {"to": ["=?utf-8?q?a=0D=0ABcc=3A_x=40evil.test?=@example.com"]},
        {"to": ["a@[1.2.3.4]"]},
        {"to": ["a@example.com."]},
        {"to": ["Ada L. <a@example.com>"]},
        {"to": ["a@example.com (comment)"]},
        {"rfc_message_id": "<=?utf-8?q?a?=@example.com>"},
        {"to": ["a@example.com\nBcc: x@evil.test"]},
        {"to": ["a@example.com, x@evil.test"]},
        {"to": ["not an address"]},
        {"to": ["ünïcode@example.com"]},
        {"bcc": ["Group: a@example.com, b@example.com;"]},
        {"reply_to": ["a@example.com\nBcc: x@evil.test"]},
        {"reply_to": ["a@example.com, x@evil.test"]},
        {"to": [], "reply_to": ["a@example.com"]},
        {"to": [], "cc": [], "bcc": []},
        {"rfc_message_id": "no-at-sign"},
        {"rfc_message_id": "<a@b> <c@d>"},
        {"in_reply_to": "<a@b>\nX: y"},
        {"references": ["<a@b>", "<c@d>\r\n"]},
    ],
)
def test_hostile_or_invalid_input_is_refused(hostile: dict[str, Any]) -> None:
    """Line breaks, control characters, extra addresses or malformed ids raise InvalidMessage."""
    with pytest.raises(InvalidMessage):
        build(**hostile)


def test_reply_to_names_the_commands_addresses() -> None:
    """Reply-To lists the command's addresses in order, after the recipients' fields."""
    message = parse(build(reply_to=["replies@example.com", "Team Inbox <team@example.com>"]))
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["replies@example.com", "team@example.com"]
    assert message.keys().index("Reply-To") == message.keys().index("To") + 1
    assert "Reply-To" not in parse(build())


def test_hostile_filename_is_refused() -> None:
    """A filename with a line break cannot reach the part's headers."""
    with pytest.raises(InvalidMessage):
        build([AttachmentBody("a.pdf\r\nContent-Type: text/html", "application/pdf", Content(b"x"))])


def test_a_hostile_filename_decoding_to_a_header_is_sent_as_its_text() -> None:
    """An encoded-word file name that decodes to CRLF + Bcc is an RFC 2231 parameter whose
    decoded form is exactly that text: the part has its three headers, no more."""
    name = "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="
    raw = build([AttachmentBody(name, "application/pdf", Content(b"%PDF"))])
    assert not [line for line in raw.split(b"\r\n") if line.lower().startswith(b"bcc")]
    attachment = next(parse(raw).iter_attachments())
    assert attachment.keys() == ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"]
    assert attachment.get_filename() == name


def test_an_encoded_word_in_the_subject_is_sent_as_its_text() -> None:
    """``=?...?=`` in a subject is itself encoded: read back, the subject is the typed text and the
    message has no header it did not ask for."""
    subject = "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="
    raw = build(subject=subject)
    assert not [line for line in raw.split(b"\r\n") if line.lower().startswith(b"bcc")]
    message = parse(raw)
    assert message.keys() == ["From", "To", "Subject", "Date", "MIME-Version", "Message-ID", "Content-Type"]
    assert message["Subject"] == subject


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_a_long_plain_subject_folds_between_words() -> None:
    """10,000 characters of ASCII words fold at single spaces into lines of at most 78: unfolded,
    the subject is the same text, unencoded."""
    subject = " ".join(f"word{i}" for i in range(1500))[:10_000].rstrip()
    raw = build(subject=subject)
    assert all(len(line) <= 78 for line in header_lines(raw))
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    assert parse(raw)["Subject"] == subject


def test_a_long_subject_is_encoded_in_words_of_at_most_75_characters() -> None:
    """10,000 characters of any script become encoded words of at most 75 characters on lines of
    at most 76, each a whole number of UTF-8 characters; they decode to the subject exactly."""
    subject = ("Grüße 山田 🎉  x\t" * 1000)[:10_000]
    raw = build(subject=subject)
    lines = header_lines(raw)
    subject_lines = lines[[line.startswith(b"Subject:") for line in lines].index(True) :]
    subject_lines = subject_lines[
        : 1 + next(i for i, line in enumerate(subject_lines[1:]) if line[:1] != b" ")
    ]
    words = [word for line in subject_lines for word in line.removeprefix(b"Subject:").split()]
    assert len(words) > 100
    for word in words:
        assert len(word) <= 75
        assert word.startswith(b"=?utf-8?b?")
        base64.b64decode(word[10:-2]).decode()  # whole characters: each word decodes alone
    assert all(len(line) <= 76 for line in subject_lines)
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize("filename", ["r" * 296 + ".pdf", "Lebenslauf Jürgen \u2013 履歴書 " * 11 + ".pdf"])
def test_a_long_filename_is_split_into_rfc_2231_sections(filename: str) -> None:
    """A 300-character file name is sent in ``filename*0*``, ``filename*1*``... sections on lines
    of at most 78, never splitting a character, and decodes back exactly."""
    raw = build([AttachmentBody(filename, "application/pdf", Content(b"%PDF"))])
    head = raw[raw.index(b"Content-Disposition") :].split(b"\r\n\r\n", 1)[0]
    sections = head.split(b"\r\n")[1:]
    assert len(sections) > 3
    assert sections[0].startswith(b" filename*0*=utf-8''")
    for index, section in enumerate(sections):
        assert section.startswith(b" filename*%d*=" % index)
        assert len(section) <= 78
        value = section.split(b"=", 1)[1].removeprefix(b"utf-8''").rstrip(b";")
        unquote_to_bytes(value).decode()  # whole characters in every section
    assert next(parse(raw).iter_attachments()).get_filename() == filename


@pytest.mark.parametrize(
    ("text", "name", "addr_spec"),
    [
        ("Bob<bob@example.com>", "Bob", "bob@example.com"),
        ("  bob@example.com ", "", "bob@example.com"),
        ("<bob@example.com>", "", "bob@example.com"),
        (r'"Doe, \\Jane \"J\"" <jane@example.com>', r'Doe, \Jane "J"', "jane@example.com"),
        ("Zoë  山田\t<z@example.com>", "Zoë 山田", "z@example.com"),
        ('"=?utf-8?q?J=C3=BCrgen?=" <j@example.com>', "=?utf-8?q?J=C3=BCrgen?=", "j@example.com"),
    ],
)
def test_mailboxes_are_parsed_by_the_senders_own_grammar(text: str, name: str, addr_spec: str) -> None:
    """Bare, bracketed and named mailboxes are accepted; a name is taken as written (an encoded
    word in it is text, not decoded) and blanks between unquoted words are one space."""
    [address] = parse(build(to=[text]))["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, addr_spec)


def test_long_address_fields_fold_between_whole_mailboxes_and_words() -> None:
    """Several named recipients and a long plain sender name fold into lines of at most 76,
    between words and mailboxes: every address and name reads back exactly."""
    to = [
        "Very Long Display Name Number One <one@example.com>",
        '"Doe, Jane (Engineering), Senior Staff" <jane@example.com>',
        "Another Quite Long Display Name <two.long.local.part@sub.example.co.uk>",
        "three@example.com",
    ]
    from_name = " ".join(["Ada"] * 30)
    raw = build(to=to, from_name=from_name)
    lines = header_lines(raw)
    assert all(len(line) <= 76 for line in lines if not line.startswith(b"Content-Type"))
    message = parse(raw)
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
        ("Very Long Display Name Number One", "one@example.com"),
        ("Doe, Jane (Engineering), Senior Staff", "jane@example.com"),
        ("Another Quite Long Display Name", "two.long.local.part@sub.example.co.uk"),
        ("", "three@example.com"),
    ]
    assert message["From"].addresses[0].display_name == from_name
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]  # plain names stay plain when folded


# Mostly what the shortcut takes; now and then what only the grammar judges (or refuses).
ATOM = st.one_of(
    *[st.text(alphabet="abcXYZ019!#$%&'*+/=^_`{|}~-", min_size=1, max_size=70)] * 4,
    st.sampled_from(["=?", "a=?b", "ü"]),
)
LABEL = st.one_of(
    *[st.text(alphabet="abZ09-", min_size=1, max_size=70)] * 6, st.sampled_from(["", "b_c", "bücher"])
)
MAILBOX_TEXT = st.builds(
    lambda words, local, labels, form: form.format(
        name=" ".join(words), addr=f"{'.'.join(local)}@{'.'.join(labels)}"
    ),
    st.lists(ATOM, min_size=1, max_size=3),
    st.lists(ATOM, min_size=1, max_size=3),
    st.lists(LABEL, min_size=1, max_size=5),
    st.sampled_from(["{addr}", "{name} <{addr}>", " {addr}", "{name}  <{addr}>", '"{name}" <{addr}>']),
)


@pytest.mark.slow
@settings(max_examples=1500, derandomize=True, deadline=None, database=None)
@given(text=MAILBOX_TEXT)
def test_the_common_mailbox_shortcut_agrees_with_the_grammar(text: str) -> None:
    """The one-regex shortcut for common mailboxes returns what the full grammar returns, and
    anything the grammar refuses is refused."""
    try:
        expected: Mailbox | type[Exception] = parse_mailbox(text, "To")
    except InvalidMessage:
        expected = InvalidMessage
    try:
        found: Mailbox | type[Exception] = mailbox(text, "To")
    except InvalidMessage:
        found = InvalidMessage
    assert found == expected


@pytest.mark.parametrize(
    "content_type", ["message/rfc822", "multipart/mixed; boundary=x", "MULTIPART/ALTERNATIVE"]
)
def test_container_media_types_are_sent_as_octet_stream(content_type: str) -> None:
    """A message/* or multipart/* attachment cannot have a base64 body: it is sent as bytes."""
    attachment = next(parse(build([AttachmentBody("x.eml", content_type, Content(b"x"))])).iter_attachments())
    assert attachment.get_content_type() == "application/octet-stream"


def test_international_domain_is_sent_in_idna() -> None:
    """A non-ASCII domain is written as its ASCII (IDNA) form."""
    assert parse(build(to=["bob@bücher.example"]))["To"].addresses[0].domain == "xn--bcher-kva.example"


def test_threading_headers() -> None:
    """In-Reply-To is the replied id; References defaults to it and keeps an explicit chain."""
    message = parse(build(in_reply_to="<first@x.test>"))
    assert message["In-Reply-To"] == "<first@x.test>"
    assert message["References"] == "<first@x.test>"
    chained = parse(build(in_reply_to="<second@x.test>", references=["<first@x.test>", "second@x.test"]))
    assert chained["References"] == "<first@x.test> <second@x.test>"


def test_bcc_is_in_the_raw_message_for_gmail_to_strip() -> None:
    """Bcc recipients are given to Gmail in the raw message (it removes the header when sending)."""
    assert parse(build(bcc=["hidden@example.com"]))["Bcc"] == "hidden@example.com"


def test_spliced_attachments_equal_what_the_email_generator_writes() -> None:
    """The spliced base64 bodies are byte for byte the generator's own output for the same tree."""
    data = [os.urandom(100_000), os.urandom(77), b""]
    bodies = [AttachmentBody(f"f{i}.bin", "application/octet-stream", Content(d)) for i, d in enumerate(data)]
    raw = build(bodies)
    message = parse(raw)
    assert [part.get_content() for part in message.iter_attachments()] == data
    # Regenerate the parsed tree with the email package alone: the bytes must not change.
    assert message.as_bytes(policy=POLICY) == raw


def test_unknown_content_type_falls_back_to_octet_stream() -> None:
    """A malformed media type is not copied into the headers."""
    body = AttachmentBody("x.bin", 'text/html; charset="x"\r\n', Content(b"x"))
    attachment = next(parse(build([body])).iter_attachments())
    assert attachment.get_content_type() == "application/octet-stream"


def test_minimum_size_counts_base64_growth_of_attachments() -> None:
    """The pre-check is a lower bound of the raw size: base64 makes 3 bytes 4."""
    ref = c.AttachmentRef(
        attachment_id=1, object_key="k", sha256="0" * 64, filename="a", content_type="a/b", size=300
    )
    sized = command(html="x" * 10, attachments=[ref])
    assert minimum_size(sized) == 410
    assert minimum_size(sized) <= len(
        build([AttachmentBody("a", "a/b", Content(b"\0" * 300))], html="x" * 10)
    )


# --- HTML to text ---------------------------------------------------------------------------


def test_html_to_text_keeps_paragraphs_and_breaks() -> None:
    """Block elements start a line; a paragraph is set apart by blank lines."""
    assert html_to_text("<h1>Title</h1><p>One<br>two</p><div>three</div><div>four</div>") == (
        "Title\n\nOne\ntwo\n\nthree\nfour\n"
    )


def test_html_to_text_drops_scripts_styles_and_comments() -> None:
    """Nothing inside script, style or head reaches the text."""
    html = "<head><title>t</title><style>p{}</style></head><script>alert(1)</script><!-- c --><p>Body</p>"
    assert html_to_text(html) == "Body\n"


def test_html_to_text_decodes_entities_once_and_collapses_space() -> None:
    """&amp;lt; stays "&lt;" (decoded once); runs of whitespace become one space."""
    assert html_to_text("<p>a &amp;lt; b &gt;   c\n\n d &eacute;</p>") == "a &lt; b > c d é\n"


def test_html_to_text_writes_link_targets_and_list_items() -> None:
    """Links keep their target after their text (unless it is the text); list items get dashes."""
    html = '<ul><li><a href="https://x.test/cv">My CV</a></li><li><a href="https://x.test">https://x.test</a></li></ul>'
    assert html_to_text(html) == "- My CV (https://x.test/cv)\n- https://x.test\n"


def test_html_to_text_ignores_javascript_links() -> None:
    """A javascript: target is not printed."""
    assert html_to_text('<a href="javascript:alert(1)">click</a>') == "click\n"


@pytest.mark.parametrize("address", ["", "Ada L.<a+tag@x.io>", "  .a@a..b ", "CA+x=y@     "])
def test_addresses_the_stdlib_parser_chokes_on_are_refused_as_invalid(address: str) -> None:
    """Input that makes the stdlib parser raise (not record a defect) is still an InvalidMessage."""
    with pytest.raises(InvalidMessage):
        build(to=[address])
