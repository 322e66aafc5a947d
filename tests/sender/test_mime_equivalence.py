"""The fast path writes exactly what the email package writes, refuses nothing, and is taken.

A seeded corpus of commands over many shapes (hostile, odd and common) is built twice: by
``build_message`` and by the reference ``build_with_email_package``. Both must return the same bytes
or raise the same exception. Boundaries are random, so each build replays the same random stream.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mailmerger_sender import mime
from mailmerger_sender.mime import (
    AttachmentBody,
    Content,
    InvalidMessage,
    build_message,
    build_with_email_package,
    write_directly,
)
from mailmerger_shared import contracts as c

Build = Callable[..., bytes | None]

NAMES = [
    "", "Bob", "Bob Smith", "Ada L.", "Doe, Jane", 'Ada "The Boss"', "back\\slash", "O'Brien", "a (b)",
    "[x]", " Jane ", "a  b", "   ", "<a@evil.test>", "Zoë 山田", "emoji 🎉", "=?utf-8?q?J=C3=BCrgen?=",
    "x=?y", "Tab\there", "a\r\nBcc: x@evil.test", "a\x00b", "Very Long Display Name " * 4,
]  # fmt: skip
LOCAL_PARTS = [
    "bob", "a.b", "a+tag", "x_y-z", "o'hara", "CA+x=y", "a..b", ".a", "a.", "ünï", '"quoted local"',
    "a=?b", "very.long.local.part" * 3, "a b",
]  # fmt: skip
DOMAINS = [
    "example.com", "x.io", "localhost", "EXAMPLE.COM", "sub.domain.co.uk", "a-.com", "b_c.d",
    "bücher.example", "a" * 63 + ".com", "a" * 64 + ".com", "[1.2.3.4]", "trailing.", "", "a..b",
]  # fmt: skip
MESSAGE_IDS = [
    "<mm-1@mailmerger.test>", "mm-2@mailmerger.test", "<CA+x=y_z@mail.gmail.com>", " <a@b> ", "<a..b@c>",
    "<a(b)@c>", '<"q"@c>', "<a@b> <c@d>", "no-at-sign", "<a@b>\n", "<=?x?=@b>", "<a@[1.2.3.4]>",
    "<" + "x" * 70 + "@y>", "\t<a@b>", "<a@b>\x0b", "<ü@b>",
]  # fmt: skip
MEDIA_TYPES = [
    "application/pdf", "APPLICATION/PDF ", "text/plain", "image/png", "text/html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "message/rfc822",
    "multipart/mixed", 'text/html; charset="x"\r\n', "a/" + "b" * 126, "a" * 70 + "/b", "x" * 127 + "/y",
    "", "nonsense",
]  # fmt: skip
FILENAMES = [
    "resume.pdf", "Résumé 履歴書.pdf", "a b.pdf", " lead.pdf", "trail .pdf", "two  spaces.pdf",
    'quote".pdf', "back\\slash.pdf", "semi;colon=x.pdf", "=?utf-8?q?x?=.pdf", "", "a.pdf\r\nX: y",
    "tab\t.pdf", "it's (1) [final].pdf",
]  # fmt: skip
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


class ReplayedRandomness:
    """``secrets.token_hex`` from a seeded stream that each build restarts, so that the two paths
    draw the same boundaries (of the real length and alphabet) when they draw them in one order."""

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


def outcome(
    build: Build, randomness: ReplayedRandomness, command: c.SendEmail, **kwargs: Any
) -> bytes | type[Exception] | None:
    randomness.restart()
    try:
        return build(command, **kwargs)
    except Exception as error:
        return type(error)


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


# --- the corpus ----------------------------------------------------------------------------


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


def random_header_text(rng: random.Random) -> str:
    alphabet = rng.choice(
        ["abcdefghijklmnop QRSTUVW 0123456789", "()<>@,:;.\\\"[]' =?", "aé山🎉 ", "a\r\n\x00\x7f\t"]
    )
    return "".join(rng.choices(alphabet, k=rng.choice([0, 1, 5, 20, 60, 69, 70, 71, 120])))


class Case:
    """Draws one command: each field plain (a value the fast path should take) or, with the case's
    own probability, odd; so the corpus runs from the common message to wholly hostile ones."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.oddness = rng.choice([0.0, 0.02, 0.1, 0.3, 1.0])

    def pick(self, plain: Sequence[Any], odd: Sequence[Any]) -> Any:
        return self.rng.choice(odd if self.rng.random() < self.oddness else plain)

    def text(self) -> str:
        plain = ["Hello Bob,\n\nA short line.\n", LINE * 12, "", "Grüße, café\n", "=" * 100 + "\n"]
        return self.pick(plain, [random_text(self.rng)])

    def mailbox(self) -> str:
        rng = self.rng
        addr_spec = f"{self.pick(LOCAL_PARTS[:6], LOCAL_PARTS)}@{self.pick(DOMAINS[:5], DOMAINS)}"
        name = self.pick(NAMES[:11], [*NAMES, random_header_text(rng)])
        form = self.pick(["bare", "atoms", "quoted"], ["tight", "spaced", "two", "group", "none"])
        if form == "atoms":
            return f"{name} <{addr_spec}>"
        if form == "quoted":
            return f'"{name}" <{addr_spec}>'
        if form == "tight":
            return f"{name}<{addr_spec}>"
        if form == "spaced":
            return f"  {addr_spec} "
        if form == "two":
            return f"{addr_spec}, other@example.com"
        if form == "group":
            return f"Group: {addr_spec};"
        if form == "none":
            return name
        return addr_spec

    def mailboxes(self, most: int) -> list[str]:
        return [self.mailbox() for _ in range(self.rng.choice([0, 0, *range(1, most + 1)]))]

    def attachment(self) -> AttachmentBody:
        filename = self.pick([FILENAMES[0], "f" * self.rng.randrange(20, 80) + ".pdf"], FILENAMES)
        media_type = self.pick(MEDIA_TYPES[:6], MEDIA_TYPES)
        return AttachmentBody(
            filename, media_type, Content(self.rng.randbytes(self.rng.choice([0, 1, 57, 1000])))
        )

    def build(self) -> tuple[c.SendEmail, str | None, list[AttachmentBody], datetime]:
        rng = self.rng
        html = rng.choice([None, "", "<p>Hi <b>Bob</b></p><p>Bye</p>", self.text()])
        made = command(
            from_address=self.pick(["ada@gmail.test"], [self.mailbox()]),
            from_name=self.pick([None, "Ada", "Ada Lovelace", "Ada L."], NAMES),
            to=self.mailboxes(3) if rng.random() < self.oddness else [self.mailbox()],
            cc=self.mailboxes(2),
            bcc=self.mailboxes(2),
            subject=self.pick(["Hello", "Quarterly update"], ["", random_header_text(rng)]),
            html=html,
            text=rng.choice([None, None, self.text()]) if html is not None else self.text(),
            rfc_message_id=self.pick(MESSAGE_IDS[:3], MESSAGE_IDS),
            in_reply_to=self.pick([None, None, "", *MESSAGE_IDS[:3]], MESSAGE_IDS),
            references=rng.sample(self.pick([MESSAGE_IDS[:2]], [MESSAGE_IDS]), rng.choice([0, 0, 1, 2])),
        )
        attachments = [self.attachment() for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
        sender_name = self.pick([None, "", "Ada Lovelace"], [None, "Zoë", "Ada, Countess", "a\nb"])
        return made, sender_name, attachments, rng.choice(DATES)


def corpus(size: int, seed: int) -> Iterator[tuple[c.SendEmail, str | None, list[AttachmentBody], datetime]]:
    rng = random.Random(seed)
    for _ in range(size):
        yield Case(rng).build()


def test_fast_path_writes_the_email_package_bytes_for_a_random_corpus(
    randomness: ReplayedRandomness,
) -> None:
    """Over 4,000 generated commands, build_message equals the reference: bytes or exception type."""
    fast = refused = 0
    for made, sender_name, attachments, date in corpus(4000, seed=20260501):
        kwargs = {"sender_name": sender_name, "attachments": attachments, "date": date}
        expected = outcome(build_with_email_package, randomness, made, **kwargs)
        assert outcome(build_message, randomness, made, **kwargs) == expected, (made, kwargs)
        direct = outcome(write_directly, randomness, made, **kwargs)
        assert direct is None or direct == expected, (made, kwargs)
        fast += direct is not None
        refused += expected is InvalidMessage
    # The corpus exercises both paths, and refusals, in earnest.
    assert fast >= 300
    assert refused >= 1000


# --- shapes the fast path must take ---------------------------------------------------------

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
            {"references": ["<first@x.test>", "second@x.test"], "in_reply_to": "<second@x.test>"},
            [],
            id="references",
        ),
        pytest.param(
            {},
            [AttachmentBody("Jane_Doe_Resume_Senior_Engineer_2026.pdf", "application/pdf", Content(b"%PDF"))],
            id="folded-filename",
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
def test_common_shapes_take_the_fast_path(
    randomness: ReplayedRandomness, overrides: dict[str, Any], attachments: Sequence[AttachmentBody]
) -> None:
    """The common message (and each body encoding, fold and header the fast path knows) is written
    directly, and equals the reference."""
    kwargs = {"sender_name": "Ada Lovelace", "attachments": attachments, "date": DATES[0]}
    made = command(**overrides)
    direct = outcome(write_directly, randomness, made, **kwargs)
    assert isinstance(direct, bytes)
    assert direct == outcome(build_with_email_package, randomness, made, **kwargs)


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Grüße"},
        {"subject": "=?utf-8?q?hi?="},
        {"subject": "x" * 70},
        {"subject": ""},
        {"from_name": "Zoë"},
        {"to": ["bob@bücher.example"]},
        {"to": ["Bob<bob@example.com>"]},
        {"references": ["<a-long-message-id-from-a-thread@mail.example.com>"] * 2},
    ],
)
def test_what_the_stdlib_would_encode_or_fold_is_left_to_it(
    randomness: ReplayedRandomness, overrides: dict[str, Any]
) -> None:
    """Encoded words, folding, IDNA and unusual address syntax are the email package's to write."""
    made = command(**overrides)
    kwargs = {"sender_name": None, "attachments": [], "date": DATES[0]}
    assert write_directly(made, **kwargs) is None
    assert outcome(build_message, randomness, made, **kwargs) == outcome(
        build_with_email_package, randomness, made, **kwargs
    )


def test_the_fast_path_draws_boundaries_like_the_email_package(randomness: ReplayedRandomness) -> None:
    """Both draw the alternative boundary, then the mixed one, from _boundary()."""
    made = command()
    drawn: list[str] = []
    real = mime._boundary

    def recorded() -> str:
        drawn.append(real())
        return drawn[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mime, "_boundary", recorded)
        randomness.restart()
        raw = build_message(made, sender_name=None, attachments=[PDF], date=DATES[0])
    assert raw.index(drawn[1].encode()) < raw.index(drawn[0].encode())
