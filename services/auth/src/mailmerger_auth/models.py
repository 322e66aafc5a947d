"""The tables of the ``auth`` schema.

Timestamps come from the service's clock, not ``now()``, so that tests can move time. Secrets are
stored sealed (see ``crypto``) next to the id of the key that sealed them; single-use things
(OAuth states, connect tickets) are stored by the SHA-256 of their value and deleted when used.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY

from mailmerger_shared.db import service_metadata
from mailmerger_shared.outbox import outbox_table

metadata = service_metadata("auth")

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),  # normalised (domain.normalise_email)
    Column("name", String(200), nullable=False),
    Column("password_hash", String(255)),  # NULL: the account signs in with Google only
    Column("google_sub", String(255), unique=True),  # the Google identity that signs in as this user
    # When the address was proven to be the user's (a mailed link, or Google vouching for it); NULL:
    # never. An unproven account may be taken over by the address's owner (see ownership.py).
    Column("email_verified_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Links mailed to an address (confirm it, reset the password), stored by the SHA-256 of their
# token: single-use (deleted when used), expiring, and only the latest reset link of a user works.
email_links = Table(
    "email_links",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("user_id", BigInteger, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False, index=True),
    Column("purpose", String(20), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("purpose IN ('confirm_email', 'reset_password')", name="purpose"),
)

# The system's own letters, written in the transaction that makes them necessary and delivered by
# the system post (system_mail.py); the body is sealed, as it carries a link's secret.
system_mail = Table(
    "system_mail",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("recipient", String(254), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("encryption_key_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per session: every refresh token of a session belongs to its family, and only the
# family's current token may be used. Presenting any other revokes the family.
refresh_families = Table(
    "refresh_families",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", BigInteger, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False, index=True),
    Column("current_jti", Uuid, nullable=False),
    # The jti the last rotation replaced, and when: a second tab refreshing with it moments later
    # gets the current token again instead of revoking the session (refresh_reuse_grace_seconds).
    Column("previous_jti", Uuid),
    Column("rotated_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # the absolute session lifetime
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", String(40)),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("public_key", LargeBinary, nullable=False),  # raw Ed25519
    Column("private_key", LargeBinary, nullable=False),  # sealed raw Ed25519
    Column("encryption_key_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activates_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
)

gmail_accounts = Table(
    "gmail_accounts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("google_sub", String(255), nullable=False),
    Column("email", String(254), nullable=False),
    Column("display_name", String(200)),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("state", String(20), nullable=False),
    # Both tokens are sealed with this key, bound to (user_id, id); NULL once disconnected.
    Column("encryption_key_id", String(64)),
    Column("refresh_token", LargeBinary),
    Column("access_token", LargeBinary),
    Column("access_token_expires_at", DateTime(timezone=True)),
    Column("connected_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "google_sub"),
    CheckConstraint("state IN ('connected', 'reconnect_required', 'disconnected')", name="state"),
)

# A Google authorization in flight: created when the browser is sent to Google, deleted when it
# comes back. ``browser_hash`` is the SHA-256 of the secret in the browser's cookie.
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state_hash", LargeBinary, primary_key=True),
    Column("browser_hash", LargeBinary, nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("user_id", BigInteger, ForeignKey(users.c.id, ondelete="CASCADE")),  # set for "connect"
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # What the consent screen asked for; the user may untick some (granular consent).
    Column("scopes", ARRAY(Text), nullable=False, server_default="{}"),
)

# Lets a browser navigation (which carries no bearer token) start "connect Gmail" for a user.
connect_tickets = Table(
    "connect_tickets",
    metadata,
    Column("ticket_hash", LargeBinary, primary_key=True),
    Column("user_id", BigInteger, ForeignKey(users.c.id, ondelete="CASCADE"), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Events this service publishes are staged here in the business transaction.
outbox = outbox_table(metadata)
