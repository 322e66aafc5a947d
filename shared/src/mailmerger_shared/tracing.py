"""Optional OpenTelemetry traces across HTTP and AMQP, off by default.

OpenTelemetry is not a dependency: with ``MM_TRACING_ENABLED=false`` (the default) or the packages
missing, every helper here is a no-op returning ``None``. When on, a publisher puts the current
span's W3C ``traceparent`` into the envelope (``Envelope.new(..., traceparent=current_traceparent())``;
the envelope already carries it in the AMQP headers) and a consumer continues the trace with
``consumer_span(envelope.tag, envelope.traceparent)``. HTTP spans come from Litestar's
``OpenTelemetryConfig`` middleware, which reads the incoming ``traceparent`` header.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import Any, ClassVar

from mailmerger_shared.settings import Settings

_state: dict[str, Any] = {"tracer": None}


class TracingSettings(Settings, frozen=True, kw_only=True):
    """OpenTelemetry tracing (needs opentelemetry-sdk and an OTLP exporter installed)."""

    prefix: ClassVar[str] = "MM_TRACING_"
    enabled: bool = False
    # OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces; unset: spans are not exported.
    otlp_endpoint: str | None = None


def available() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


def configure_tracing(settings: TracingSettings, *, service: str) -> bool:
    """Install a tracer provider for this process; whether tracing is now on."""
    if not settings.enabled or not available():
        return False
    from opentelemetry import trace  # type: ignore[import-not-found,unused-ignore]
    from opentelemetry.sdk.resources import Resource  # type: ignore[import-not-found,unused-ignore]
    from opentelemetry.sdk.trace import TracerProvider  # type: ignore[import-not-found,unused-ignore]

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[import-not-found,unused-ignore]
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # type: ignore[import-not-found,unused-ignore]

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    trace.set_tracer_provider(provider)
    _state["tracer"] = trace.get_tracer("mailmerger")
    return True


def enabled() -> bool:
    return _state["tracer"] is not None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when tracing is off."""
    if _state["tracer"] is None:
        return None
    from opentelemetry.propagate import inject  # type: ignore[import-not-found,unused-ignore]

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def consumer_span(name: str, traceparent: str | None) -> Iterator[None]:
    """A consumer span that continues the publisher's trace; nothing when tracing is off."""
    tracer = _state["tracer"]
    if tracer is None:
        yield
        return
    from opentelemetry.propagate import extract  # type: ignore[import-not-found,unused-ignore]
    from opentelemetry.trace import SpanKind  # type: ignore[import-not-found,unused-ignore]

    context = extract({"traceparent": traceparent} if traceparent else {})
    with tracer.start_as_current_span(f"consume {name}", context=context, kind=SpanKind.CONSUMER):
        yield


def reset() -> None:
    """Forget the tracer (tests)."""
    _state["tracer"] = None
