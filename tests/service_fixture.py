"""Shared pieces of the service tests: small splade-es indices on the real nodes, the service
in a thread in front of them, raw HTTP for what clients refuse to send, and a tiny fake
upstream used only for edge injection (headers seen, slow answers)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from corpus_fixture import DOCS

from splade_es.cluster.connection import Cluster, ClusterError
from splade_es.data.corpus import from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.service import IndexRule, ServiceConfig, ServiceModels, ServiceThread

QUERY = "does aspirin prevent heart attacks"


@dataclass
class Indices:
    """The test indices of one engine (all named ``svc-...``)."""

    cluster: Cluster
    reranked: str  # splade-es index, embeddings in doc values (the default)
    in_source: str  # splade-es index, embeddings in _source (fetched by id)
    plain: str  # an index splade-es did not build
    created: list[str] = field(default_factory=list)


def build_indices(cluster: Cluster, splade_encoder: Any, colbert_encoder: Any) -> Indices:
    prefix = f"svc-{uuid.uuid4().hex[:8]}"
    names = Indices(cluster, f"{prefix}-dv", f"{prefix}-src", f"{prefix}-plain")
    for index, form in ((names.reranked, "doc_values"), (names.in_source, "source")):
        colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="float16", form=form))
        config = BuildConfig(BulkConfig(index=index, progress=False))
        build_index(cluster, from_records(DOCS), splade_encoder, config, colbert)
        names.created.append(index)
    cluster.request("PUT", f"/{names.plain}")
    names.created.append(names.plain)
    for doc in DOCS[:4]:
        body = {"title": doc["title"], "text": doc["text"]}
        cluster.request("PUT", f"/{names.plain}/_doc/{doc['_id']}", body=body)
    cluster.request("POST", f"/{prefix}-*/_refresh")
    return names


def drop_indices(names: Indices) -> None:
    for index in names.created:
        try:
            names.cluster.request("DELETE", f"/{index}")
        except ClusterError as error:
            if error.status != 404:
                raise


def service_config(upstream: str, *patterns: str, **options: Any) -> ServiceConfig:
    rules = tuple(IndexRule(p, options.pop("rerank_k", 100)) for p in patterns)
    base = ServiceConfig(upstream=upstream, port=0, indices=rules, meta_ttl_s=5.0)
    return replace(base, **options)


@contextmanager
def running(config: ServiceConfig, models: ServiceModels) -> Iterator[str]:
    with ServiceThread(config, models) as url:
        yield url


def raw_request(url: str, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes (a request line no client would send) and read the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    answer = b"".join(chunks)
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


class FakeUpstream:
    """A tiny HTTP server standing in for the cluster where a real node cannot show the
    edge: it records each request's headers (and ``paths``), ``/slow`` answers after
    ``delay_s``, ``/reset`` hangs up without answering, and a path in ``routes`` gets its
    ``(status, body)`` (JSON)."""

    def __init__(
        self, delay_s: float = 1.5, routes: dict[str, tuple[int, bytes]] | None = None
    ) -> None:
        self.seen: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.routes = routes or {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                owner.seen.append({k.lower(): v for k, v in self.headers.items()})
                owner.paths.append(self.path)
                if self.path.startswith("/reset"):  # hang up without an answer
                    self.close_connection = True
                    return
                if self.path.startswith("/slow"):
                    time.sleep(delay_s)
                status, body = owner.routes.get(
                    self.path.split("?")[0], (200, json.dumps({"path": self.path}).encode())
                )
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
