"""The mailbox watcher's classification of one incoming message, from real-world header shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailmerger_sender.watcher.classify import (
    MAX_DETAIL_CHARS,
    Ignored,
    IncomingMessage,
    Response,
    classify,
    decode_words,
)

ACCOUNT = "sender@gmail.test"
INBOX = ("INBOX", "UNREAD")
WHEN_MS = 1_765_000_000_000

Headers = list[tuple[str, str]]


def message(headers: Headers, labels: tuple[str, ...] = INBOX, snippet: str = "") -> IncomingMessage:
    return IncomingMessage(
        gmail_id="18c0a1b2c3d4e5f6",
        thread_id="18c0a1b2c3d4e000",
        label_ids=labels,
        headers=headers,
        internal_date_ms=WHEN_MS,
        snippet=snippet,
    )


GMAIL_DSN: Headers = [
    ("From", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"),
    ("To", ACCOUNT),
    ("Subject", "Delivery Status Notification (Failure)"),
    ("Auto-Submitted", "auto-replied"),
    ("X-Failed-Recipients", "nobody@bounces.example.com"),
    ("Content-Type", 'multipart/report; boundary="000000000000abc"; report-type=delivery-status'),
]
GMAIL_DELAY: Headers = [
    ("From", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"),
    ("Subject", "Delivery Status Notification (Delay)"),
    ("Auto-Submitted", "auto-replied"),
    ("Content-Type", 'multipart/report; boundary="b"; report-type=delivery-status'),
]
OUTLOOK_NDR: Headers = [
    ("From", "postmaster@outlook.com"),
    ("Subject", "Undeliverable: Quick question about your hiring"),
    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="_000_"'),
    ("Auto-Submitted", "auto-replied"),
]
EXCHANGE_NDR: Headers = [
    ("From", "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com>"),
    ("Subject", "Undeliverable: Quick question"),
    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="x"'),
]
POSTFIX_BOUNCE: Headers = [
    ("From", "MAILER-DAEMON@mail.example.org (Mail Delivery System)"),
    ("Subject", "Undelivered Mail Returned to Sender"),
    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="4A1F2"'),
    ("Auto-Submitted", "auto-replied"),
]
POSTFIX_DELAY: Headers = [
    ("From", "MAILER-DAEMON@mail.example.org (Mail Delivery System)"),
    ("Subject", "Delayed Mail (still being retried)"),
    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="4A1F3"'),
]
EXIM_FAILED: Headers = [
    ("From", "Mail Delivery System <Mailer-Daemon@mx.example.net>"),
    ("Subject", "Mail delivery failed: returning message to sender"),
    ("X-Failed-Recipients", "gone@example.net"),
]
SENDMAIL_WARNING: Headers = [
    ("From", "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>"),
    ("Subject", "Warning: message 4BXK9a001234 delayed 4 hours"),
]
SENDING_LIMIT: Headers = [
    ("From", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>"),
    ("Subject", "Delivery Status Notification (Failure)"),
    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="q"'),
]
OUTLOOK_AUTO_REPLY: Headers = [
    ("From", "Jane Doe <jane@contoso.com>"),
    ("Subject", "Automatic reply: Quick question"),
    ("Auto-Submitted", "auto-generated"),
    ("X-Auto-Response-Suppress", "All"),
]
GMAIL_VACATION: Headers = [
    ("From", "Bob <bob@gmail.com>"),
    ("Subject", "Re: Quick question"),
    ("Auto-Submitted", "auto-replied"),
    ("Precedence", "bulk"),
]
HUMAN_REPLY: Headers = [
    ("From", '"Bob Smith" <bob@example.com>'),
    ("Subject", "Re: Quick question"),
    ("In-Reply-To", "<mm-1@mailmerger.test>"),
    ("Auto-Submitted", "no"),
]


CASES: list[tuple[str, Headers, str, str | None]] = [
    ("gmail dsn", GMAIL_DSN, "bounce", "nobody@bounces.example.com"),
    ("gmail delay dsn", GMAIL_DELAY, "delay", None),
    ("outlook.com ndr", OUTLOOK_NDR, "bounce", None),
    ("exchange ndr", EXCHANGE_NDR, "bounce", None),
    ("postfix bounce", POSTFIX_BOUNCE, "bounce", None),
    ("postfix delay", POSTFIX_DELAY, "delay", None),
    ("exim failure", EXIM_FAILED, "bounce", "gone@example.net"),
    ("sendmail delay warning", SENDMAIL_WARNING, "delay", None),
    ("outlook auto-reply", OUTLOOK_AUTO_REPLY, "auto_reply", None),
    ("gmail vacation responder", GMAIL_VACATION, "auto_reply", None),
    ("human reply", HUMAN_REPLY, "reply", None),
    (
        "mailing list",
        [("From", "list@lists.example.org"), ("Subject", "Re: x"), ("Precedence", "bulk")],
        "auto_reply",
        None,
    ),
    (
        "precedence junk",
        [("From", "a@b.test"), ("Subject", "Hi"), ("Precedence", "junk")],
        "auto_reply",
        None,
    ),
    (
        "precedence auto_reply",
        [("From", "a@b.test"), ("Subject", "Hi"), ("Precedence", "auto_reply")],
        "auto_reply",
        None,
    ),
    (
        "precedence list is a person",
        [("From", "a@b.test"), ("Subject", "Re: Hi"), ("Precedence", "list")],
        "reply",
        None,
    ),
    (
        "x-autoreply",
        [("From", "a@b.test"), ("Subject", "Re: Hi"), ("X-Autoreply", "yes")],
        "auto_reply",
        None,
    ),
    (
        "x-autorespond",
        [("From", "a@b.test"), ("Subject", "Re: Hi"), ("X-Autorespond", "Hi")],
        "auto_reply",
        None,
    ),
    (
        "auto-submitted with params",
        [("From", "a@b.test"), ("Subject", "Hi"), ("Auto-Submitted", "auto-replied; owner-email=a@b.test")],
        "auto_reply",
        None,
    ),
    ("auto-submitted no", [("From", "a@b.test"), ("Subject", "Hi"), ("Auto-Submitted", "No")], "reply", None),
    (
        "out of office subject",
        [("From", "a@b.test"), ("Subject", "Out of Office: Quick question")],
        "auto_reply",
        None,
    ),
    (
        "lotus out of the office",
        [("From", "a@b.test"), ("Subject", "Jane Smith is out of the office.")],
        "auto_reply",
        None,
    ),
    (
        "auto: subject",
        [("From", "a@b.test"), ("Subject", "AUTO: Jane is away (returning 12/12)")],
        "auto_reply",
        None,
    ),
    (
        "autoreply subject",
        [("From", "a@b.test"), ("Subject", "Autoreply: Quick question")],
        "auto_reply",
        None,
    ),
    (
        "german outlook",
        [("From", "a@b.test"), ("Subject", "Abwesenheitsnotiz: Quick question")],
        "auto_reply",
        None,
    ),
    (
        "french outlook",
        [("From", "a@b.test"), ("Subject", "Réponse automatique : Quick question")],
        "auto_reply",
        None,
    ),
    (
        "french encoded",
        [("From", "a@b.test"), ("Subject", "=?utf-8?q?R=C3=A9ponse_automatique_=3A_Hi?=")],
        "auto_reply",
        None,
    ),
    (
        "german encoded b",
        [("From", "a@b.test"), ("Subject", "=?UTF-8?B?QWJ3ZXNlbmhlaXRzbm90aXo6IEhp?=")],
        "auto_reply",
        None,
    ),
    (
        "reply about out of office",
        [("From", "a@b.test"), ("Subject", "Re: Out of office policy for December")],
        "reply",
        None,
    ),
    (
        "reply quoting undeliverable",
        [("From", "a@b.test"), ("Subject", "Re: Undeliverable mail?")],
        "reply",
        None,
    ),
    ("reply mentioning delay", [("From", "a@b.test"), ("Subject", "Re: Sorry for the delay")], "reply", None),
    (
        "x-failed-recipients alone",
        [("From", "relay@example.com"), ("Subject", "Hi"), ("X-Failed-Recipients", "x@y.test, z@y.test")],
        "bounce",
        "x@y.test",
    ),
    (
        "report content-type alone",
        [
            ("From", "relay@example.com"),
            ("Subject", "Report"),
            ("Content-Type", "multipart/report; report-type=delivery-status"),
        ],
        "bounce",
        None,
    ),
    (
        "postmaster without dsn subject",
        [("From", "postmaster@example.com"), ("Subject", "Returned mail: see transcript")],
        "bounce",
        None,
    ),
    (
        "read receipt is automatic",
        [
            ("From", "a@b.test"),
            ("Subject", "Read: Hi"),
            ("Content-Type", "multipart/report; report-type=disposition-notification"),
        ],
        "auto_reply",
        None,
    ),
    ("no headers at all", [], "reply", None),
]


@pytest.mark.parametrize(("name", "headers", "kind", "failed"), CASES, ids=[case[0] for case in CASES])
def test_kind_from_real_world_headers(name: str, headers: Headers, kind: str, failed: str | None) -> None:
    """Each real-world shape is classified as the kind a person would name it."""
    verdict = classify(message(headers), ACCOUNT)
    assert isinstance(verdict, Response), verdict
    assert verdict.kind == kind
    assert verdict.failed_recipient == failed
    assert verdict.received_at == datetime.fromtimestamp(WHEN_MS / 1000, UTC)
    assert len(verdict.detail) <= MAX_DETAIL_CHARS


@pytest.mark.parametrize(
    ("labels", "headers"),
    [
        (("SENT",), HUMAN_REPLY),
        (("SENT", "INBOX"), HUMAN_REPLY),  # a message to oneself
        (("DRAFT",), HUMAN_REPLY),
        (("SPAM",), HUMAN_REPLY),
        (("TRASH",), GMAIL_DSN),
        ((), HUMAN_REPLY),
        (INBOX, [("From", f"Me <{ACCOUNT.upper()}>"), ("Subject", "Re: Quick question")]),
    ],
    ids=["sent", "sent-to-self", "draft", "spam", "trash", "archived", "from-the-account"],
)
def test_our_own_mail_and_mail_outside_the_inbox_are_ignored(
    labels: tuple[str, ...], headers: Headers
) -> None:
    """Our own messages and anything not in the inbox are never a response."""
    assert isinstance(classify(message(headers, labels), ACCOUNT), Ignored)


def test_sending_limit_bounce_is_told_by_subject_or_snippet() -> None:
    """Gmail's "reached a limit for sending mail" bounce parks the account, whatever says it."""
    snippet = "Message not delivered You have reached a limit for sending mail. Your message was not sent."
    by_snippet = classify(message(SENDING_LIMIT, snippet=snippet), ACCOUNT)
    by_subject = classify(
        message(
            [
                ("From", "mailer-daemon@googlemail.com"),
                ("Subject", "You have reached a limit for sending mail"),
            ]
        ),
        ACCOUNT,
    )
    smtp = classify(message(GMAIL_DSN, snippet="550 5.4.5 Daily user sending quota exceeded."), ACCOUNT)
    assert [getattr(v, "kind", None) for v in (by_snippet, by_subject, smtp)] == ["sending_limit"] * 3


def test_a_plain_failure_dsn_is_not_a_sending_limit() -> None:
    """An address-not-found DSN stays a hard bounce of the recipient."""
    snippet = "Address not found Your message wasn't delivered to nobody@bounces.example.com"
    verdict = classify(message(GMAIL_DSN, snippet=snippet), ACCOUNT)
    assert isinstance(verdict, Response)
    assert verdict.kind == "bounce"


def test_detail_names_the_subject_and_the_telling_header() -> None:
    """The detail says why, for people: the subject and the header that decided."""
    verdict = classify(message(OUTLOOK_AUTO_REPLY), ACCOUNT)
    assert isinstance(verdict, Response)
    assert verdict.detail.startswith('subject "Automatic reply: Quick question"')
    assert "Auto-Submitted: auto-generated" in verdict.detail
    assert verdict.from_address == "jane@contoso.com"


def test_a_dsn_names_the_mailer_daemon_as_sender() -> None:
    """A bounce's from_address is the daemon that wrote it."""
    verdict = classify(message(GMAIL_DSN), ACCOUNT)
    assert isinstance(verdict, Response)
    assert verdict.from_address == "mailer-daemon@googlemail.com"
    assert "X-Failed-Recipients: nobody@bounces.example.com" in verdict.detail


HOSTILE: list[tuple[str, Headers]] = [
    (
        "crlf injection",
        [("From", "a@b.test\r\nBcc: victim@x.test"), ("Subject", "Re: hi\r\n\r\nAuto-Submitted: no")],
    ),
    ("nul bytes", [("From", "a\x00@b.test"), ("Subject", "\x00\x01\x02")]),
    ("huge subject", [("From", "a@b.test"), ("Subject", "Re: " + "x" * 5_000_000)]),
    ("huge from", [("From", "<" + "a" * 1_000_000 + "@b.test>"), ("Subject", "Re: hi")]),
    ("many headers", [("X-Junk", "y")] * 100_000),
    ("bad charset", [("From", "a@b.test"), ("Subject", "=?x-unknown-charset?q?abc?=")]),
    ("bad base64", [("From", "a@b.test"), ("Subject", "=?utf-8?b?####?=")]),
    ("truncated word", [("From", "a@b.test"), ("Subject", "=?utf-8?q?")]),
    ("undecodable bytes", [("From", "a@b.test"), ("Subject", "=?utf-8?b?/w==?=")]),
    ("nested angle brackets", [("From", "<<<<a@b.test>>>>"), ("Subject", "Re: x")]),
    ("encoded from", [("From", "=?utf-8?q?=E2=80=AEevil?= <a@b.test>"), ("Subject", "Re: x")]),
    (
        "failed recipients junk",
        [("From", "mailer-daemon@x.test"), ("X-Failed-Recipients", ",,,<<>>" * 10_000)],
    ),
    ("surrogates", [("From", "a@b.test"), ("Subject", "\ud800\udfff")]),
]


@pytest.mark.parametrize(("name", "headers"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_headers_never_crash_and_stay_bounded(name: str, headers: Headers) -> None:
    """Whatever a header holds, classification answers, on one line, within the length caps."""
    verdict = classify(message(headers), ACCOUNT)
    if isinstance(verdict, Response):
        assert len(verdict.detail) <= MAX_DETAIL_CHARS
        assert "\n" not in verdict.detail
        assert "\r" not in verdict.detail
        assert len(verdict.from_address) <= 320
        assert verdict.failed_recipient is None or len(verdict.failed_recipient) <= 320


def test_crlf_in_a_subject_does_not_smuggle_a_header() -> None:
    """A subject carrying "\\r\\nAuto-Submitted: no" is one subject, not two headers."""
    headers = [("From", "a@b.test"), ("Subject", "Automatic reply:\r\nAuto-Submitted: no")]
    verdict = classify(message(headers), ACCOUNT)
    assert isinstance(verdict, Response)
    assert verdict.kind == "auto_reply"


def test_encoded_words_decode_or_stay_as_they_are() -> None:
    """RFC 2047 words decode; broken ones come back unchanged."""
    assert decode_words("=?utf-8?q?Abwesenheitsnotiz=3A_Hi?=") == "Abwesenheitsnotiz: Hi"
    assert decode_words("=?bogus?q?x?=") == "=?bogus?q?x?="
    assert decode_words("plain") == "plain"


def test_a_bad_internal_date_still_gives_a_time() -> None:
    """An out-of-range internalDate falls back to the epoch rather than raising."""
    bad = IncomingMessage(
        gmail_id="1", thread_id="1", label_ids=INBOX, headers=HUMAN_REPLY, internal_date_ms=10**20
    )
    verdict = classify(bad, ACCOUNT)
    assert isinstance(verdict, Response)
