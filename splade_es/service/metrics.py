"""Prometheus metrics of the service (``GET /_splade_es/metrics``), in a registry of its own
so two services in one process (tests) do not collide.

- ``splade_es_requests_total{outcome}``: every request, by how it ended: ``passthrough``,
  ``reranked``, ``fail_open``, ``refused`` (400/413/429 by the service),
  ``upstream_unavailable`` (502/503 by the service).
- ``splade_es_reranked_hits_total``: hits rescored by ColBERT.
- ``splade_es_fail_open_total{reason}``: searches answered with the first stage instead.
- ``splade_es_passthrough_searches_total{reason}``: searches on configured indices passed
  through untouched.
- ``splade_es_stage_seconds{stage}``: latency of ``first_stage``, ``fetch``, ``rerank`` and
  ``total`` (a handled search) and ``passthrough`` (any other request, up to the upstream's
  answer headers: the body then streams).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "splade_es_requests",
            "Requests by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.reranked_hits = Counter(
            "splade_es_reranked_hits", "Hits rescored by ColBERT.", registry=self.registry
        )
        self.fail_open = Counter(
            "splade_es_fail_open",
            "Searches answered with the first stage after a rerank problem.",
            ["reason"],
            registry=self.registry,
        )
        self.passed_searches = Counter(
            "splade_es_passthrough_searches",
            "Searches on configured indices passed through untouched.",
            ["reason"],
            registry=self.registry,
        )
        self.stages = Histogram(
            "splade_es_stage_seconds",
            "Latency by stage.",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe(self, stage: str, milliseconds: float) -> None:
        """Record ``milliseconds`` spent in ``stage``."""
        self.stages.labels(stage=stage).observe(milliseconds / 1000)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
