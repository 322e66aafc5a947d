"""Optional OpenTelemetry traces across HTTP and AMQP, off by default.

OpenTelemetry is an optional extra (``mailmerger-shared[tracing]``; the development environment has
it): with ``MM_TRACING_ENABLED=false`` (the default) or the packages missing, every helper here is a
no-op returning ``None``. When on, a publisher puts the current
span's W3C ``traceparent`` into the envelope (``Envelope.new(..., traceparent=current_traceparent())``;
the envelope already carries it in the AMQP headers) and a consumer continues the trace with
``consumer_span(envelope.tag, envelope.traceparent)``. HTTP spans come from Litestar's
``OpenTelemetryConfig`` middleware, which reads the incoming ``traceparent`` header.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mailmerger_shared.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

_state: dict[str, Tracer | None] = {"tracer": None}


class TracingSettings(Settings, frozen=True, kw_only=True):
    """OpenTelemetry tracing (needs the ``tracing`` extra: ``mailmerger-shared[tracing]``)."""

    prefix: ClassVar[str] = "MM_TRACING_"
    enabled: bool = False
    # OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces; unset: spans are not exported.
    otlp_endpoint: str | None = None


def available() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


def configure_tracing(
    settings: TracingSettings, *, service: str, exporter: SpanExporter | None = None
) -> bool:
    """Install a tracer provider for this process; whether tracing is now on.

    Spans go to the OTLP endpoint when one is set, and to ``exporter`` when one is given (tests
    keep them in memory).
    """
    if not settings.enabled or not available():
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider is what Litestar's HTTP middleware uses; OpenTelemetry sets it only once
    # per process, so our own spans come from this provider directly, whatever was set before.
    trace.set_tracer_provider(provider)
    _state["tracer"] = provider.get_tracer("mailmerger")
    return True


def enabled() -> bool:
    return _state["tracer"] is not None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when tracing is off."""
    if _state["tracer"] is None:
        return None
    from opentelemetry.propagate import inject

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
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    context = extract({"traceparent": traceparent} if traceparent else {})
    with tracer.start_as_current_span(f"consume {name}", context=context, kind=SpanKind.CONSUMER):
        yield


def reset() -> None:
    """Forget the tracer (tests)."""
    _state["tracer"] = None
