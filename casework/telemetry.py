"""Metrics and traces for the worker (and any client that wants traces).

- Prometheus: the Temporal SDK's runtime serves ``/metrics`` on ``CASEWORK_METRICS_ADDRESS``
  (``host:port``; the embedded stack sets 127.0.0.1:9464). It carries the SDK's own metrics
  (``temporal_*``) and casework's (``casework_*``, see :mod:`casework.metrics`).
- OpenTelemetry traces: when an OTLP endpoint is configured (``CASEWORK_OTLP_ENDPOINT``, or the
  standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), spans for
  client calls, workflows and activities go there over OTLP/HTTP through the SDK's
  ``TracingInterceptor``. Without one, nothing is traced and nothing is imported.

docs/operations.md says how to scrape and what each metric means.
"""

from __future__ import annotations

import os
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

_TRACER_PROVIDER: Any = None
_GLOBAL_SET = False


def runtime(metrics_address: str | None) -> Runtime:
    """A runtime that serves Prometheus metrics on ``metrics_address``, or none when None."""
    if not metrics_address:
        return Runtime(telemetry=TelemetryConfig())
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=metrics_address, counters_total_suffix=True)
        )
    )


def otlp_endpoint(env: dict[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL configured, if any."""
    env = dict(os.environ) if env is None else env
    if base := env.get("CASEWORK_OTLP_ENDPOINT"):
        return base if base.rstrip("/").endswith("/v1/traces") else base.rstrip("/") + "/v1/traces"
    if traces := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return traces
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return base.rstrip("/") + "/v1/traces"
    return None


def tracing_interceptors(service_name: str, endpoint: str | None = None) -> list[Any]:
    """``[TracingInterceptor]`` exporting to the configured endpoint, or ``[]`` when none is.

    Pass the result as the client's interceptors: workers built on that client use it too.
    The tracer provider is set up once per process."""
    endpoint = endpoint or otlp_endpoint()
    if endpoint is None:
        return []
    global _TRACER_PROVIDER, _GLOBAL_SET
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    if _TRACER_PROVIDER is None:
        # OTEL_SERVICE_NAME, when set, wins over the default name (Resource.create reads it).
        resource = Resource.create(
            {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)}
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        if not _GLOBAL_SET:
            # Other libraries in the process trace through the global provider; OpenTelemetry
            # lets it be set once.
            trace.set_tracer_provider(provider)
            _GLOBAL_SET = True
        _TRACER_PROVIDER = provider
    # Cases are often started outside casework (the Temporal CLI, schedules) with no client
    # span to hang workflow spans from: create them anyway.
    return [
        TracingInterceptor(
            _TRACER_PROVIDER.get_tracer("casework"), always_create_workflow_spans=True
        )
    ]


def shutdown_tracing() -> None:
    """Export the spans still buffered and stop exporting (before a process exits)."""
    global _TRACER_PROVIDER
    if _TRACER_PROVIDER is not None:
        _TRACER_PROVIDER.shutdown()
        _TRACER_PROVIDER = None


def flush_traces() -> None:
    """Export the spans buffered so far."""
    if _TRACER_PROVIDER is not None:
        _TRACER_PROVIDER.force_flush()
