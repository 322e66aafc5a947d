"""The sender's own header writer, judged by the email package: its bytes on the plain domain, its
parser on everything.

(a) On the plain domain (every header value printable ASCII on one line, simple addresses, plain
file names), ``build_message`` writes exactly what the email package writes with ``policy.SMTP``:
a seeded corpus over many shapes and bodies is built by both, with the same random boundaries.

(b) On any text (hypothesis: every code point, the separators and controls, encoded-word
look-alikes, the issue's attacks), either the text breaks the header-text rule and the build is
refused with ``InvalidMessage``, or the stdlib's parser reads back exactly the header fields
expected, the exact addresses, and the exact subject, display names and file name; and no line of
the header block holds a CR or LF of its own.

The email package is the oracle here only: the sender never hands it text (see ``headers``).
"""

from __future__ import annotations

import base64
import email
import random
import re
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.headerregistry import Address, AddressHeader
from email.message import EmailMessage, MIMEPart
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailmerger_sender import mime
from mailmerger_sender.mime import AttachmentBody, Content, InvalidMessage, build_message
from mailmerger_shared import contracts as c
from mailmerger_shared.header_text import FORBIDDEN

SMTP = policy.SMTP
PART_HEAD = re.compile(rb"\r\n--mm-[0-9a-f]+\r\n(.*?)\r\n\r\n", flags=re.DOTALL)
# The plain domain, piece by piece: display names of printable ASCII words (single spaces, no
# ``=?``), dot-atom@LDH addresses, <dot-atom@dot-atom> ids, file names without quote or backslash.
NAMES = [
    "Bob", "Bob Smith", "Ada L.", "Doe, Jane", 'Ada "The Boss"', "back\\slash", "O'Brien", "a (b)",
    "[x]", "<a@evil.test>", "x=y?",
]  # fmt: skip
LOCAL_PARTS = ["bob", "a.b", "a+tag", "x_y-z", "o'hara", "CA+x=y", "very.long.local.part" * 2]
DOMAINS = ["example.com", "x.io", "localhost", "EXAMPLE.COM", "sub.domain.co.uk", "a" * 40 + ".com"]
MESSAGE_IDS = ["<mm-1@mailmerger.test>", "mm-2@mailmerger.test", "<CA+x=y_z@mail.gmail.com>", " <a@b> "]
SUBJECTS = ["Hello", "Quarterly update", "a  b", 'It\'s "quoted" (and <bracketed>), ok?', "x" * 60, "=x?"]
MEDIA_TYPES = [
    "application/pdf", "APPLICATION/PDF ", "text/plain", "image/png", "text/html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "nonsense",
]  # fmt: skip
FILENAMES = ["resume.pdf", "a b.pdf", "semi;colon=x.pdf", "it's (1) [final].pdf", "tab-free_name.PDF"]
ALPHABETS = [
    "abcdefghij KLMNOP 0123456789.,;:!?",
    "= =?=",
    "<p>&nbsp;\"'</p>",
    "aé€山🎉 ",
    "\t\x0b\x0c\x1c\x85\u2028 ab",
    "From ",
]
LINE = "<p>This is a personalised line of the campaign body, about one kilobyte in all.</p>"
DATES = [
    datetime(2026, 5, 1, 9, 30, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1999, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2026, 5, 1, 9, 30),
]
Built = tuple[c.SendEmail, str | None, list[AttachmentBody], datetime]


class ReplayedRandomness:
    """``secrets.token_hex`` from a seeded stream that each build restarts, so that the sender and
    the oracle draw the same boundaries (of the real length and alphabet) in the same order."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._stream = random.Random(seed)

    def restart(self) -> None:
        self._stream = random.Random(self.seed)

    def token_hex(self, nbytes: int | None = None) -> str:
        return self._stream.randbytes(nbytes or 32).hex()


@pytest.fixture
def randomness(monkeypatch: pytest.MonkeyPatch) -> ReplayedRandomness:
    replayed = ReplayedRandomness(seed=7)
    monkeypatch.setattr(secrets, "token_hex", replayed.token_hex)
    return replayed


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


# --- the oracle: the email package, on the plain domain only ---------------------------------


def mailbox_parts(text: str, display_name: str | None = None) -> Address:
    """The plain mailbox ``text`` (as the corpus writes them) as the stdlib's Address."""
    name, _, angled = text.rpartition(" <")
    addr_spec = angled.rstrip(">") if angled.endswith(">") else text
    if angled.endswith(">"):
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\") if name.startswith('"') else name
    else:
        name = ""
    local, _, domain = addr_spec.partition("@")
    return Address(display_name if display_name is not None else name, local, domain)


def email_package_bytes(
    command: c.SendEmail, *, sender_name: str | None, attachments: Sequence[AttachmentBody], date: datetime
) -> bytes:
    """What the email package writes for a plain command (the sender's old reference builder)."""
    message = MIMEPart(policy=SMTP)  # EmailMessage would add MIME-Version to every part
    message["From"] = mailbox_parts(command.from_address, command.from_name or sender_name)
    for field, values in (("To", command.to), ("Cc", command.cc), ("Bcc", command.bcc)):
        if values:
            message[field] = [mailbox_parts(value) for value in values]
    if command.reply_to:
        message["Reply-To"] = [mailbox_parts(value) for value in command.reply_to]
    message["Subject"] = command.subject
    message["Date"] = date
    message["MIME-Version"] = "1.0"

    def bracketed(value: str) -> str:
        value = value.strip()
        return value if value.startswith("<") else f"<{value}>"

    message["Message-ID"] = bracketed(command.rfc_message_id)
    references = [bracketed(value) for value in command.references]
    if command.in_reply_to:
        message["In-Reply-To"] = bracketed(command.in_reply_to)
        references = references or [bracketed(command.in_reply_to)]
    if references:
        message["References"] = " ".join(references)
    text = command.text if command.text is not None else mime.html_to_text(command.html or "")
    message.set_content(text)
    if command.html is not None:
        message.make_alternative(boundary=mime._boundary())
        html = MIMEPart(policy=SMTP)
        html.set_content(command.html, subtype="html")
        message.attach(html)
    if not attachments:
        return message.as_bytes()
    message.make_mixed(boundary=mime._boundary())
    placeholder = "placeholder-" + random.Random(0).randbytes(8).hex()
    for index, attachment in enumerate(attachments):
        maintype, subtype = mime._media_type(attachment.content_type).split("/")
        part = MIMEPart(policy=SMTP)
        part.set_content(b"", maintype, subtype, disposition="attachment", filename=attachment.filename)
        part.set_payload(f"{placeholder}.{index}\n")
        message.attach(part)
    raw = message.as_bytes()
    # The generator writes base64 bodies line by line; put each attachment's (the same lines) in.
    for index, attachment in enumerate(attachments):
        raw = raw.replace(f"{placeholder}.{index}".encode(), attachment.content.base64_body())
    return raw


def one_line_fields(raw: bytes) -> bool:
    """Whether the email package wrote every field of ``raw`` on one line of at most 78 characters
    (the boundary and file name parameters may move to a line of their own: the sender's do too)."""
    heads = [raw.split(b"\r\n\r\n", 1)[0], *PART_HEAD.findall(raw)]
    lines = [line for head in heads for line in head.split(b"\r\n")]
    continuations = [line for line in lines if line.startswith(b" ")]
    return all(len(line) <= 78 for line in lines) and all(
        line.startswith((b" boundary=", b" filename=")) for line in continuations
    )


# --- (a) the plain domain: the email package's bytes -----------------------------------------


def random_text(rng: random.Random) -> str:
    """Lines of chosen lengths (around the 78-byte limit, and long) over one alphabet or several."""
    alphabet = "".join(rng.sample(ALPHABETS, rng.choice([1, 1, 2])))
    lengths = [0, 1, 60, 76, 77, 78, 79, 80, 200, 1100]
    lines = [
        "".join(rng.choices(alphabet, k=rng.choice(lengths))) + rng.choice(["", "", " ", "\t"])
        for _ in range(rng.choice([0, 1, 2, 10, 11, 25]))
    ]
    text = rng.choice(["\n", "\r\n", "\r"]).join(lines)
    return text + rng.choice(["", "\n", "\r\n"])


def plain_command(rng: random.Random) -> Built:
    def mailbox() -> str:
        addr_spec = f"{rng.choice(LOCAL_PARTS)}@{rng.choice(DOMAINS)}"
        name = rng.choice(["", *NAMES])
        if not name:
            return addr_spec
        if set(name) & set('()<>@,:;.\\"[]'):
            return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{addr_spec}>'
        return f"{name} <{addr_spec}>"

    def body() -> str:
        return rng.choice(["Hello Bob,\n\nA short line.\n", LINE * 12, "", "Grüße\n", random_text(rng)])

    html = rng.choice([None, "", "<p>Hi <b>Bob</b></p><p>Bye</p>", body()])
    made = command(
        from_name=rng.choice([None, "Ada", "Ada Lovelace", "Ada L.", "Doe, Jane"]),
        to=[mailbox() for _ in range(rng.choice([1, 1, 2]))],
        cc=[mailbox() for _ in range(rng.choice([0, 0, 1]))],
        bcc=[mailbox() for _ in range(rng.choice([0, 0, 1]))],
        subject=rng.choice(SUBJECTS),
        html=html,
        text=rng.choice([None, None, body()]) if html is not None else body(),
        rfc_message_id=rng.choice(MESSAGE_IDS),
        in_reply_to=rng.choice([None, None, *MESSAGE_IDS]),
        references=rng.sample(MESSAGE_IDS[:2], rng.choice([0, 0, 1, 2])),
    )
    attachments = [
        AttachmentBody(
            rng.choice([*FILENAMES, "f" * rng.randrange(20, 60) + ".pdf"]),
            rng.choice(MEDIA_TYPES),
            Content(rng.randbytes(rng.choice([0, 1, 57, 1000]))),
        )
        for _ in range(rng.choice([0, 0, 1, 1, 2]))
    ]
    return made, rng.choice([None, "", "Ada Lovelace"]), attachments, rng.choice(DATES)


def plain_corpus(size: int, seed: int) -> Iterator[Built]:
    rng = random.Random(seed)
    for _ in range(size):
        yield plain_command(rng)


@pytest.mark.slow
def test_plain_messages_are_written_as_the_email_package_writes_them(randomness: ReplayedRandomness) -> None:
    """Over 3,000 generated plain commands whose fields the email package writes on one line each,
    build_message returns its bytes exactly."""
    compared = 0
    for made, sender_name, attachments, date in plain_corpus(3000, seed=20260501):
        kwargs = {"sender_name": sender_name, "attachments": attachments, "date": date}
        randomness.restart()
        expected = email_package_bytes(made, **kwargs)
        if not one_line_fields(expected):
            continue
        randomness.restart()
        assert build_message(made, **kwargs) == expected, (made, kwargs)
        compared += 1
    assert compared >= 2000  # the corpus is mostly inside the domain


PDF = AttachmentBody("resume.pdf", "application/pdf", Content(random.Random(1).randbytes(100_000)))


@pytest.mark.parametrize(
    ("overrides", "attachments"),
    [
        pytest.param({"html": "<p>Hello,</p>" + LINE * 12, "from_name": "Bench Sender"}, [], id="1kb-html"),
        pytest.param({"html": "<p>Hello,</p>" + LINE * 12}, [PDF], id="1kb-html-100kb-attachment"),
        pytest.param({"html": None, "text": "Just text\nover two lines"}, [], id="text-only-7bit"),
        pytest.param({"text": "Grüße, café\n", "html": "<p>Grüße</p>"}, [], id="8bit"),
        pytest.param({"html": "=" * 300 + "\n" + "\x01" * 200}, [], id="base64"),
        pytest.param({"html": "\n".join([LINE] * 12)}, [], id="quoted-printable-over-10-lines"),
        pytest.param({"html": LINE + " \n" + LINE + "\t"}, [], id="quoted-printable-trailing-space"),
        pytest.param(
            {"html": "\n".join(["a" * 79] * 10 + ["=" * 2000])}, [], id="encoding-chosen-on-first-10-lines"
        ),
        pytest.param({"html": ""}, [PDF, PDF], id="empty-html-two-attachments"),
        pytest.param({"subject": ""}, [], id="empty-subject"),
        pytest.param(
            {"to": ['"Doe, Jane" <jane@example.com>', "Bob Smith <bob@example.com>"], "from_name": "Ada L."},
            [],
            id="quoted-display-names",
        ),
        pytest.param(
            {"cc": ["c@example.com"], "bcc": ["d@example.com"], "in_reply_to": "<first@x.test>"},
            [],
            id="cc-bcc-threading",
        ),
        pytest.param(
            {"reply_to": ["replies@example.com", "Team Inbox <team@example.com>"]}, [], id="reply-to"
        ),
        pytest.param(
            {"references": ["<first@x.test>", "second@x.test"], "in_reply_to": "<second@x.test>"},
            [],
            id="references",
        ),
        pytest.param(
            {},
            [AttachmentBody("Jane_Doe_Resume_Senior_Engineer_2026.pdf", "application/pdf", Content(b"%PDF"))],
            id="filename-on-a-line-of-its-own",
        ),
        pytest.param(
            {},
            [
                AttachmentBody(
                    "cv.docx",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    Content(b"PK"),
                )
            ],
            id="long-media-type",
        ),
    ],
)
def test_common_shapes_are_the_email_package_bytes(
    randomness: ReplayedRandomness, overrides: dict[str, Any], attachments: Sequence[AttachmentBody]
) -> None:
    """The common message (and each body encoding, fold and header of the plain domain) is
    written exactly as the email package writes it."""
    kwargs = {"sender_name": "Ada Lovelace", "attachments": attachments, "date": DATES[0]}
    made = command(**overrides)
    randomness.restart()
    expected = email_package_bytes(made, **kwargs)
    randomness.restart()
    assert build_message(made, **kwargs) == expected


def test_boundaries_are_drawn_as_the_email_package_draws_them(randomness: ReplayedRandomness) -> None:
    """The alternative boundary is drawn first, then the mixed one, from _boundary()."""
    drawn: list[str] = []
    real = mime._boundary

    def recorded() -> str:
        drawn.append(real())
        return drawn[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mime, "_boundary", recorded)
        randomness.restart()
        raw = build_message(command(), sender_name=None, attachments=[PDF], date=DATES[0])
    assert raw.index(drawn[1].encode()) < raw.index(drawn[0].encode())


# --- (b) any text: the stdlib's parser reads back exactly what was meant ----------------------

ATTACKS = [
    "=?utf-8?q?x=0D=0ABcc:_someone@example.org?=",
    "=?UTF-8?B?eA0KQmNjOiBzb21lb25lQGV4YW1wbGUub3Jn?=",
    "=?utf-8?q?=0A?=",
    "a\r\nBcc: x@evil.test",
    "a\r\n Bcc: x@evil.test",
    "a\u2028Bcc: x@evil.test",
    "a\u2029b",
    "a\x85b",
    "a\x00b",
    "\ud800",
    '"; filename="evil.exe',
    "x?= =?utf-8?q?y",
    "<x@evil.test>, y@evil.test",
    "Bcc: x@evil.test",
    " leading and trailing ",
    "tab\tinside",
    "",
]
HOSTILE = "=?uUtTfF-8bBqQ_:@<>,;\"'\\()[] \t\r\n\x00\x0b\x7f\x85\u2028\u2029é山🎉\ufeff\u200bx"
TEXT = st.one_of(
    st.text(max_size=100),
    st.text(alphabet=HOSTILE, max_size=100),
    st.sampled_from(ATTACKS),
    st.tuples(st.sampled_from(ATTACKS), st.text(alphabet=HOSTILE, max_size=20)).map("".join),
    st.text(alphabet="aé山 ", min_size=60, max_size=400),  # several encoded words
)
# What the rule allows: the same texts, without what it forbids.
ALLOWED_TEXT = TEXT.map(lambda text: FORBIDDEN.sub("", text))
SETTINGS = settings(max_examples=400, derandomize=True, deadline=None, database=None)
ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")
DATA = b"%PDF-1.4 payload"
FIELD_OR_FOLD = re.compile(rb"[A-Za-z-]+:(?: [ -~]*)?| +[!-~][ -~]*")  # a field's first line, or a fold


def quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unfolded(raw_head: bytes, field: str) -> str:
    """The raw (still encoded) value of ``field`` in a header block, unfolded."""
    [value] = [
        line.removeprefix(f"{field}:").removeprefix(" ")
        for line in raw_head.decode("ascii").replace("\r\n ", " ").split("\r\n")
        if line.startswith(f"{field}:")
    ]
    return value


def display_name(header: AddressHeader, raw_value: str) -> str:
    """The display name of a one-mailbox field as RFC 2047 reads it.

    The stdlib's phrase parser (3.11) keeps the blank between two encoded words and collapses
    blanks inside them, where RFC 2047 (6.2) drops the first and keeps the second; so when the
    name was encoded, the words are decoded here, after checking the stdlib saw the same words.
    """
    [address] = header.addresses
    words = [base64.b64decode(word).decode() for word in ENCODED_WORD.findall(raw_value)]
    if not words:
        return address.display_name
    assert " ".join(words).split() == address.display_name.split()
    return "".join(words)


def build(subject: str, from_name: str, to_name: str, filename: str) -> bytes:
    made = command(
        from_name=from_name, to=[f"{quoted(to_name)} <bob@example.com>"], subject=subject, html="<p>Hi</p>"
    )
    attachment = AttachmentBody(filename, "application/pdf", Content(DATA))
    return build_message(made, sender_name=None, attachments=[attachment], date=DATES[0])


def check_header_block(head: bytes) -> None:
    """Every line ends in CRLF, holds no CR or LF of its own, is ASCII and within RFC 5322's 998;
    a continuation line starts with a blank."""
    assert head.isascii()
    for line in head.split(b"\r\n"):
        assert b"\r" not in line
        assert b"\n" not in line
        assert len(line) <= 998
        assert FIELD_OR_FOLD.fullmatch(line), line


@SETTINGS
@given(
    field=st.sampled_from(["subject", "from_name", "to_name", "filename"]),
    text=TEXT,
    forbidden=st.sampled_from("\r\n\x00\x01\x1f\x7f\x85\x9f\u2028\u2029\ud800\udfff"),
    at=st.integers(min_value=0),
)
def test_text_breaking_the_header_rule_is_refused_naming_what(
    field: str, text: str, forbidden: str, at: int
) -> None:
    """A line break, control, separator or surrogate anywhere in a subject, display name or file
    name refuses the message, naming the field."""
    at %= len(text) + 1
    values = {"subject": "Hello", "from_name": "Ada", "to_name": "Bob", "filename": "cv.pdf"}
    values[field] = text[:at] + forbidden + text[at:]
    named = {"subject": "subject", "from_name": "From display name", "to_name": "To", "filename": "filename"}
    with pytest.raises(InvalidMessage, match=f"{named[field]} contains"):
        build(**values)


def stdlib_filename(name: str) -> str:
    """What the stdlib's ``get_filename()`` returns for an attachment named exactly ``name`` (the
    header's parameter, checked above, is ``name``): it unwraps a value in angle brackets
    (``email.utils.unquote``, whatever the encoding) and strips the result. Mail programs keep
    "<cv>.pdf"-style names as written; this is the reader's quirk, not the message's."""
    if len(name) >= 2 and name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    return name.strip()


@pytest.mark.slow
@SETTINGS
@given(subject=ALLOWED_TEXT, from_name=ALLOWED_TEXT, to_name=ALLOWED_TEXT, filename=ALLOWED_TEXT)
def test_any_other_text_reads_back_exactly(subject: str, from_name: str, to_name: str, filename: str) -> None:
    """Any subject, display name and file name the rule allows is read back by the stdlib's parser
    exactly, in exactly the fields and addresses expected, from ASCII lines without a CR or LF of
    their own."""
    raw = build(subject, from_name, to_name, filename)
    head = raw.split(b"\r\n\r\n", 1)[0]
    check_header_block(head)
    for part_head in PART_HEAD.findall(raw):
        check_header_block(part_head)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.keys() == ["From", "To", "Subject", "Date", "MIME-Version", "Message-ID", "Content-Type"]
    assert not parsed.defects
    assert [a.addr_spec for a in parsed["From"].addresses] == ["ada@gmail.test"]
    assert [a.addr_spec for a in parsed["To"].addresses] == ["bob@example.com"]
    assert not parsed["From"].defects
    assert not parsed["To"].defects
    assert display_name(parsed["From"], unfolded(head, "From")) == from_name
    assert display_name(parsed["To"], unfolded(head, "To")) == to_name
    assert str(parsed["Subject"]) == subject
    assert not parsed["Subject"].defects
    parts = list(parsed.walk())
    assert [part.get_content_type() for part in parts] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf",
    ]  # fmt: skip
    attachment = parts[-1]
    assert attachment.keys() == ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"]
    assert attachment["Content-Disposition"].params["filename"] == filename
    assert attachment.get_filename() == stdlib_filename(filename)
    assert attachment.get_content() == DATA
