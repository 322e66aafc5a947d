"""Typed, frozen settings read from environment variables.

Each concern is a frozen msgspec Struct with its own prefix (``MM_DB_``, ``MM_REDIS_``…); a field
``url`` of ``DatabaseSettings`` is read from ``MM_DB_URL``. Loading checks every field before it
fails, so one start-up error names every missing or malformed variable at once.

A ``.env`` file is read for development (real environment variables win over it).

``MM_ENVIRONMENT`` (``Deployment``) says whether the process runs on a development machine or in
a real deployment. Development, the default, is what ``make run``, compose and the tests run as;
a group that holds a published development value (a credential printed in ``.env.example``, the
emulator's client secret, the development encryption key) names it in ``published_defaults``, and
outside development loading refuses every such value in the same one error.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, TypeVar, Union, get_args, get_origin

import msgspec
from dotenv import dotenv_values

S = TypeVar("S", bound="Settings")


class SettingsError(Exception):
    """Configuration is missing or malformed; the message names every offending variable."""

    def __init__(self, problems: list[str]) -> None:
        # Groups several services share (MM_DB_*, MM_HTTP_*) report the same problem once.
        self.problems = list(dict.fromkeys(problems))
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every settings group; subclasses set ``prefix``."""

    prefix: ClassVar[str]

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of ``field``: ``MM_DB_`` + ``URL``."""
        return f"{cls.prefix}{field.upper()}"

    def published_defaults(self) -> list[str]:
        """One problem per variable of this group that holds a value published for development
        (it is in this repository, so it is no secret); refused outside development."""
        return []


Environment: TypeAlias = Literal["development", "production"]


class Deployment(Settings, frozen=True, kw_only=True):
    """Whether the process runs for development or for real (``MM_ENVIRONMENT``).

    Development is the default so that ``make run``, compose and the tests need no configuration;
    every real deployment sets ``production``, where start-up refuses the published development
    values (see ``published_defaults``) and the Google emulator serves no admin API.
    """

    prefix: ClassVar[str] = "MM_"
    environment: Environment = "development"

    @property
    def development(self) -> bool:
        return self.environment == "development"


def environment(env_file: str | Path | None = ".env") -> dict[str, str]:
    """The process environment layered over the ``.env`` file, if one exists."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values


def _parse(raw: str, field_type: Any) -> Any:
    """Convert one variable's text to its field type.

    Lists, dicts and structs are written as JSON; a list of scalars may also be written
    comma-separated (``MM_HTTP_CORS_ORIGINS=http://a,http://b``).
    """
    stripped = raw.strip()
    if stripped[:1] in "[{":
        return msgspec.json.decode(stripped.encode(), type=field_type, strict=False)
    if get_origin(field_type) in (list, tuple, set, frozenset):
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        return msgspec.convert(parts, field_type, strict=False)
    return msgspec.convert(raw, field_type, strict=False)


def load(cls: type[S], env: Mapping[str, str] | None = None, *, problems: list[str] | None = None) -> S:
    """Build ``cls`` from ``env``; raise SettingsError naming every bad variable.

    When ``problems`` is given, errors are appended to it instead of raised, so several groups
    can be loaded and reported together (see ``load_all``).
    """
    env = environment() if env is None else env
    collect = problems if problems is not None else []
    known_before = len(collect)  # problems of the groups loaded before this one
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        if _is_group(field.type):  # a group inside a group keeps its own prefix (``Deployment``)
            values[field.name] = load(field.type, env, problems=collect)
            continue
        variable = cls.variable(field.name)
        raw = env.get(variable)
        if raw is None or raw == "":
            if field.required:
                collect.append(f"{variable} is required ({_describe(field.type)})")
            continue
        try:
            values[field.name] = _parse(raw, field.type)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            collect.append(f"{variable}={raw!r} is malformed: expected {_describe(field.type)} ({exc})")
    if problems is None and collect:
        raise SettingsError(collect)
    if len(collect) > known_before:
        return None  # type: ignore[return-value]  # caller raises after collecting all groups
    try:
        return msgspec.convert(values, cls)
    except msgspec.ValidationError as exc:  # cross-field constraints (e.g. Meta bounds)
        if problems is None:
            raise SettingsError([f"{cls.prefix}*: {exc}"]) from exc
        problems.append(f"{cls.prefix}*: {exc}")
        return None  # type: ignore[return-value]  # caller raises after collecting all groups


def load_all(
    *classes: type[Settings], env: Mapping[str, str] | None = None, problems: list[str] | None = None
) -> tuple[Any, ...]:
    """Load several settings groups, reporting the problems of all of them in one error.

    When the groups include the ``Deployment`` and it is not development, every published
    development value any group holds is one more problem (``refuse_published_defaults``).
    When ``problems`` is given, they are appended to it instead of raised (as for ``load``).
    """
    env = environment() if env is None else env
    collect = problems if problems is not None else []
    loaded: tuple[Settings | None, ...] = tuple(load(cls, env, problems=collect) for cls in classes)
    collect += refuse_published_defaults(group for group in loaded if group is not None)
    if problems is None and collect:
        raise SettingsError(collect)
    return loaded


def refuse_published_defaults(groups: Iterable[Settings]) -> list[str]:
    """The published development values among ``groups`` (and the groups inside them), when one
    of them is a ``Deployment`` other than development; nothing in development."""
    everything = list(_with_nested(groups))
    deployment = next((group for group in everything if isinstance(group, Deployment)), None)
    if deployment is None or deployment.development:
        return []
    refused = [problem for group in everything for problem in group.published_defaults()]
    return [f"{problem} (not allowed with MM_ENVIRONMENT={deployment.environment})" for problem in refused]


def _with_nested(groups: Iterable[Settings]) -> Iterator[Settings]:
    for group in groups:
        yield group
        yield from _with_nested(
            value for name in group.__struct_fields__ if isinstance(value := getattr(group, name), Settings)
        )


def _is_group(field_type: Any) -> bool:
    return isinstance(field_type, type) and issubclass(field_type, Settings)


def _describe(field_type: Any) -> str:
    if get_origin(field_type) is Annotated:  # the bounds are in msgspec's own message
        return _describe(get_args(field_type)[0])
    if get_origin(field_type) in (Union, UnionType):  # ``int | None``: unset is the None
        return " or ".join(_describe(arg) for arg in get_args(field_type) if arg is not type(None))
    if get_origin(field_type) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(field_type))
    name = getattr(field_type, "__name__", None)
    return name if name else str(field_type).replace("typing.", "")


# --- settings every service shares -----------------------------------------------------------


class DatabaseSettings(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_DB_"
    url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/mailmerger"
    pool_size: int = 10
    max_overflow: int = 10
    echo: bool = False


class RedisSettings(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_REDIS_"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "mm:"


class BrokerSettings(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_AMQP_"
    url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # AMQP messages (single messages or bundles) a consumer holds unacknowledged at once.
    prefetch: int = 32
    # Messages a consumer handles at once: bundles are unpacked, so this bounds the work in flight.
    concurrency: int = 64
    # Messages of one tag a publisher puts in one AMQP message (1: no bundles). RabbitMQ's cost is
    # per AMQP message, so bundling the pipeline's commands and outcomes takes most of it away.
    bundle_size: int = 100
    delivery_limit: int = 5
    publish_timeout: float = 10.0
    # A process that starts before the broker waits this long for it (then exits for its supervisor).
    startup_wait_seconds: float = 120.0
    # Pause between reconnect attempts after a lost connection. aio-pika's default, 5 s, left
    # consumers up to ~10 s behind a broker restart; an attempt a second costs nothing.
    reconnect_seconds: float = 1.0
    # A worker whose consumer is gone this long (broker down, or a reconnect that never restored
    # it) stops so its supervisor starts a fresh process.
    stall_exit_seconds: float = 30.0


class HttpSettings(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_HTTP_"
    host: str = "127.0.0.1"
    port: int = 8080
    cors_origins: list[str] = msgspec.field(
        default_factory=lambda: ["http://localhost:5173", "http://127.0.0.1:5173"]
    )
    public_url: str = "http://127.0.0.1:8080"
    debug: bool = False

    def published_defaults(self) -> list[str]:
        # Not a published value, but development-only all the same: debug mode answers errors
        # with tracebacks (paths, settings, request data).
        if not self.debug:
            return []
        return [f"{self.variable('debug')}=true answers errors with tracebacks; unset it"]


class JwtSettings(Settings, frozen=True, kw_only=True):
    """How every service verifies access tokens issued by auth."""

    prefix: ClassVar[str] = "MM_JWT_"
    jwks_url: str = "http://127.0.0.1:8080/v1/auth/.well-known/jwks.json"
    issuer: str = "mailmerger-auth"
    audience: str = "mailmerger"
    leeway_seconds: int = 10


# --- internal calls between services --------------------------------------------------------
# Each caller has its own credential (``MM_INTERNAL_<CALLER>_TOKEN``): it presents it, and only
# the services whose internal routes accept that caller hold it. So a process is given exactly
# the credentials its settings name: templates never holds the sender's, and cannot obtain a
# Gmail access token. Each target service has its own URL; the defaults are the all-in-one's
# internal listener, which routes ``/internal/<service>/...`` by path.

ALL_IN_ONE_INTERNAL_URL = "http://127.0.0.1:8081"

# The development credentials of .env.example and docker-compose.yml: published, so refused
# outside development.
DEV_QUEUE_TOKEN = "dev-only-queue-token-change-me"  # noqa: S105
DEV_SENDER_TOKEN = "dev-only-sender-token-change-me"  # noqa: S105
# The Google emulator's development OAuth client secret (the emulator, compose, the all-in-one).
DEV_GOOGLE_CLIENT_SECRET = "mailmerger-dev-secret"  # noqa: S105
# The Gmail account the system's own mail (address confirmations, password resets) is sent from in
# development: the Google emulator holds it with this published refresh token from its start.
DEV_SYSTEM_MAIL_ADDRESS = "mailmerger-system@gmail.local"
DEV_SYSTEM_MAIL_REFRESH_TOKEN = "1//0dev-only-system-mail-refresh-token"  # noqa: S105

_MAKE_A_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 (a command)


def _published_credential(variable: str, value: str, published: str) -> list[str]:
    if value != published:
        return []
    return [
        f"{variable} is the published development credential; set a secret of your own ({_MAKE_A_SECRET})"
    ]


class QueueCredential(Settings, frozen=True, kw_only=True):
    """The queue service's credential for internal routes (it calls templates, storage, auth)."""

    prefix: ClassVar[str] = "MM_INTERNAL_"
    queue_token: str

    def published_defaults(self) -> list[str]:
        return _published_credential(self.variable("queue_token"), self.queue_token, DEV_QUEUE_TOKEN)


class SenderCredential(Settings, frozen=True, kw_only=True):
    """The sender's credential for internal routes (it obtains Gmail access tokens from auth)."""

    prefix: ClassVar[str] = "MM_INTERNAL_"
    sender_token: str

    def published_defaults(self) -> list[str]:
        return _published_credential(self.variable("sender_token"), self.sender_token, DEV_SENDER_TOKEN)


class AuthServiceUrl(Settings, frozen=True, kw_only=True):
    """Where the auth service's ``/internal/auth/...`` routes are served."""

    prefix: ClassVar[str] = "MM_INTERNAL_"
    auth_url: str = ALL_IN_ONE_INTERNAL_URL


class TemplatesServiceUrl(Settings, frozen=True, kw_only=True):
    """Where the templates service's ``/internal/templates/...`` routes are served."""

    prefix: ClassVar[str] = "MM_INTERNAL_"
    templates_url: str = ALL_IN_ONE_INTERNAL_URL


class StorageServiceUrl(Settings, frozen=True, kw_only=True):
    """Where the storage service's ``/internal/storage/...`` routes are served."""

    prefix: ClassVar[str] = "MM_INTERNAL_"
    storage_url: str = ALL_IN_ONE_INTERNAL_URL


class ObjectStoreSettings(Settings, frozen=True, kw_only=True):
    """Where attachments live (S3, MinIO, Supabase Storage, or the local moto stand-in).

    ``endpoint_url`` unset means AWS itself; missing keys fall back to the default AWS credential
    chain (e.g. an IAM role). Storage writes the bucket; the sender reads it.
    """

    prefix: ClassVar[str] = "MM_S3_"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    bucket: str = "mailmerger-attachments"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # Path style works everywhere (moto, MinIO, Supabase need it); AWS also accepts virtual.
    addressing_style: Literal["path", "virtual", "auto"] = "path"


class LogSettings(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_LOG_"
    level: str = "INFO"
    json: bool = True


# --- a service's settings ----------------------------------------------------------------------
# A service's settings are a Struct whose every field is a group (``load_service`` loads each);
# it subclasses one of these two and declares only its own groups. Their fields come first.


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The groups every service reads, a worker without an HTTP app (the sender) included."""

    deployment: Deployment  # MM_ENVIRONMENT: outside development, published values are refused
    database: DatabaseSettings
    redis: RedisSettings
    broker: BrokerSettings
    log: LogSettings


class HttpServiceSettings(ServiceSettings, frozen=True, kw_only=True):
    """The groups of a service with an HTTP app: where it listens and how it verifies access tokens."""

    http: HttpSettings
    jwt: JwtSettings


T = TypeVar("T", bound=msgspec.Struct)


def load_service(
    cls: type[T], env: Mapping[str, str] | None = None, *, problems: list[str] | None = None
) -> T:
    """Load a service's settings: a Struct whose every field is a settings group.

    All groups are checked before failing, so one error lists every bad variable of the service.
    With ``problems``, they are appended to it and None is returned when there are any, so that a
    process running several services reports all of theirs at once.
    """
    fields = msgspec.structs.fields(cls)
    known_before = len(problems) if problems is not None else 0
    groups = load_all(*(field.type for field in fields), env=env, problems=problems)
    if problems is not None and len(problems) > known_before:
        return None  # type: ignore[return-value]  # the caller raises after collecting every service
    return cls(**{field.name: group for field, group in zip(fields, groups, strict=True)})


def unknown_variables(env: Mapping[str, str], known: Iterable[str], *, prefix: str = "MM_") -> list[str]:
    """One warning per ``prefix`` variable of ``env`` that no setting reads, naming the closest
    known one: a misspelled variable is otherwise silently ignored and its default used."""
    names = sorted(set(known))
    warnings = []
    for variable in sorted(name for name in env if name.startswith(prefix) and name not in names):
        close = difflib.get_close_matches(variable, names, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else " (docs/CONFIGURATION.md lists every setting)"
        warnings.append(f"{variable} is not a MailMerger setting and is ignored{hint}")
    return warnings
