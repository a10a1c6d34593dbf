"""The test process's one OpenTelemetry setup: a shared in-memory span exporter.

A TracerProvider can be set only once per process, so every test that looks at spans asks this
module for the exporter instead of configuring its own; clear it at the start of each test::

    @pytest.fixture
    def spans() -> InMemorySpanExporter:
        exporter = span_exporter()
        exporter.clear()
        return exporter
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import configure_telemetry

_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """Return the process-wide in-memory exporter, configuring telemetry on first use."""
    global _exporter  # noqa: PLW0603  (one exporter per process, like the provider it feeds)
    if _exporter is None:
        exporter = InMemorySpanExporter()
        configure_telemetry("tests", exporter=exporter)
        _exporter = exporter
    return _exporter
