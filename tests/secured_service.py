"""Pieces of the security tests of the reranking service: a splade-es index with ColBERT
embeddings on the secured node, the node's own answer to a request (to compare the service's
with), every log record of the service and its clients, and the engines' error shape."""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from corpus_fixture import DOCS

from splade_es.cluster.companion import codebook_index_name
from splade_es.cluster.connection import Cluster, ClusterConfig, ClusterError
from splade_es.data.corpus import from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage

# The service, its upstream client and its server: every record at DEBUG.
LOGGERS = ("splade_es", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access")


def build_secured_index(cluster: Cluster, splade_encoder: Any, colbert_encoder: Any) -> str:
    """A ``sec-svc-...`` splade-es index of the test corpus, its embeddings residual-coded
    in doc values (so the service reads a codebook, too, with the app's credentials)."""
    name = f"sec-svc-{uuid.uuid4().hex[:8]}"
    colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="residual", centroids=8))
    config = BuildConfig(BulkConfig(index=name, progress=False))
    build_index(cluster, from_records(DOCS), splade_encoder, config, colbert)
    cluster.request("POST", f"/{name}/_refresh")
    return name


def drop_index(cluster: Cluster, name: str) -> None:
    """Delete the index and its codebook companion."""
    for index in (name, codebook_index_name(name)):
        try:
            cluster.request("DELETE", f"/{index}")
        except ClusterError as error:
            if error.status != 404:
                raise


def node_answer(
    config: ClusterConfig, method: str, path: str, headers: Mapping[str, str], body: Any = None
) -> httpx.Response:
    """The secured node's own answer to a request, sent straight to it over TLS."""
    assert config.ca_certs is not None
    verify = ssl.create_default_context(cafile=str(config.ca_certs))
    with httpx.Client(verify=verify, trust_env=False) as client:
        return client.request(method, config.url + path, headers=dict(headers), json=body)


@contextmanager
def every_log_record(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every record of :data:`LOGGERS` at DEBUG, uvicorn's too (its loggers do not
    propagate to the root, where ``caplog`` listens). Enter it after the services are
    made: uvicorn configures its loggers again when one is."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    isolated = [logging.getLogger(n) for n in LOGGERS if not logging.getLogger(n).propagate]
    for logger in isolated:
        logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        for logger in isolated:
            logger.removeHandler(caplog.handler)


def engine_error(response: httpx.Response) -> dict[str, Any]:
    """The error of an answer in the engines' JSON error shape (fails on anything else)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = json.loads(response.content)
    error = body["error"]
    assert body["status"] == response.status_code
    assert error["root_cause"] == [{"type": error["type"], "reason": error["reason"]}]
    return dict(error)
