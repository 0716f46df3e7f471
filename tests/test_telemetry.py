"""Traces: with an OTLP endpoint configured, a case's client call, workflow and activities arrive
there as spans, through the Temporal SDK's TracingInterceptor, over real OTLP/HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from casework import telemetry
from casework.config import Settings
from tests.fake_systems import FakeSystems, scenario
from workflows.invoice_exception import InvoiceExceptionInput, InvoiceExceptionWorkflow, Outcome


class Collector:
    """A minimal OTLP/HTTP traces receiver on loopback: records the names of spans it gets."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource.resource.attributes
                            if a.key == "service.name"
                        ),
                        "",
                    )
                    for scope in resource.scope_spans:
                        collector.spans += [(service, span.name) for span in scope.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    thread = threading.Thread(target=collector.server.serve_forever, daemon=True)
    thread.start()
    yield collector
    # Export what is left while the collector still listens, and trace nothing after the test.
    telemetry.shutdown_tracing()
    collector.server.shutdown()
    collector.server.server_close()


def test_the_otlp_endpoint_comes_from_casework_or_the_standard_variables() -> None:
    assert telemetry.otlp_endpoint({}) is None
    assert telemetry.otlp_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    assert (
        telemetry.otlp_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t"})
        == "http://c:4318/t"
    )
    assert telemetry.otlp_endpoint(
        {"CASEWORK_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"}
    ) == ("http://a:4318/v1/traces")


def test_metrics_are_served_only_where_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASEWORK_METRICS_ADDRESS", raising=False)
    assert Settings.from_env().metrics_address is None
    monkeypatch.setenv("CASEWORK_METRICS_ADDRESS", "127.0.0.1:9999")
    assert Settings.from_env().metrics_address == "127.0.0.1:9999"


async def test_a_case_is_traced_from_the_client_call_to_its_activities(
    time_skipping_env: WorkflowEnvironment, collector: Collector
) -> None:
    interceptors = telemetry.tracing_interceptors("casework-test", endpoint=collector.url)
    assert interceptors, "an endpoint was given: tracing must be on"
    client = Client(**{**time_skipping_env.client.config(), "interceptors": interceptors})
    systems = FakeSystems(scenario("INV-T1"))
    queue = f"traced-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[InvoiceExceptionWorkflow],
        activities=systems.activities(),
    ):
        result = await client.execute_workflow(
            InvoiceExceptionWorkflow.run,
            InvoiceExceptionInput(invoice_id="INV-T1", submitted_by="alice"),
            id=f"{InvoiceExceptionWorkflow.case_id('INV-T1')}-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
    assert result.outcome is Outcome.AUTO_APPROVED

    deadline = time.monotonic() + 15
    wanted = {
        "StartWorkflow:InvoiceException",
        "RunWorkflow:InvoiceException",
        "RunActivity:erp.get_invoice",
        "RunActivity:payments.pay",
    }
    while not wanted <= {name for _, name in collector.spans}:
        telemetry.flush_traces()
        if time.monotonic() > deadline:
            raise AssertionError(f"spans never arrived: {sorted(set(collector.spans))}")
        await asyncio.sleep(0.1)
    assert {service for service, _ in collector.spans} == {"casework-test"}
