"""The service's guard rails: refused request targets, body and concurrency limits,
credentials passed on and never logged, the upstream down, and ``splade-es serve`` itself
(URL printed last, clean shutdown on SIGTERM with a request in flight)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from service_fixture import FakeUpstream, raw_request, running, service_config

from splade_es.service import ServiceModels

SECRET = "c3VwZXI6czNjcjN0LXBhc3N3b3Jk"  # what an app's Authorization carries


@pytest.fixture(scope="module")
def models(colbert_encoder):
    return ServiceModels(colbert_encoder)


@pytest.fixture
def fake():
    with FakeUpstream() as upstream:
        yield upstream


def error_of(body: bytes | str) -> dict:
    import json

    answer = json.loads(body)
    assert set(answer) == {"error", "status"} and answer["error"]["root_cause"]
    return answer


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET http://169.254.169.254/latest HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /docs/../_cluster/settings HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /docs/%2e%2e/_cluster/settings HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /docs/.%2E/_nodes HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /_cat/indices HTTP/1.1\r\nHost: evil.example/x@127.0.0.1\r\n",
        b"CONNECT 127.0.0.1:9200 HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"GET /docs/_doc/a#b HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    ],
    ids=["absolute-url", "dotdot", "encoded", "half-encoded", "host", "connect", "hash"],
)
def test_targets_off_the_upstream_are_refused(fake, models, request_line):
    with running(service_config(fake.url), models) as url:
        status, body = raw_request(url, request_line + b"Connection: close\r\n\r\n")
    assert status == 400
    assert error_of(body)["status"] == 400
    assert fake.seen == []  # nothing reached the upstream


def test_bodies_over_the_limit_get_413(fake, models):
    config = service_config(fake.url, "docs", max_body_bytes=1000)
    big = b'{"query": {"match": {"text": "' + b"x" * 2000 + b'"}}}'

    def chunks():
        yield big[:500]
        yield big[500:]

    with running(config, models) as url, httpx.Client() as client:
        declared = client.post(f"{url}/other/_search", content=big)
        streamed = client.post(f"{url}/other/_count", content=chunks())
        search = client.post(f"{url}/docs/_search", content=chunks())
        small = client.post(f"{url}/other/_count", content=b"{}")
    assert [declared.status_code, streamed.status_code, search.status_code] == [413] * 3
    assert error_of(declared.content)["error"]["type"] == "content_too_long_exception"
    assert small.status_code == 200


def test_requests_over_the_concurrency_limit_get_429(fake, models):
    config = service_config(fake.url, max_concurrency=1)
    statuses: list[int] = []
    with running(config, models) as url:
        slow = threading.Thread(
            target=lambda: statuses.append(httpx.get(f"{url}/slow").status_code)
        )
        slow.start()
        time.sleep(0.5)
        refused = httpx.get(f"{url}/_cat/health")
        health = httpx.get(f"{url}/_splade_es/health")  # the service's own paths stay open
        slow.join()
    assert refused.status_code == 429
    assert error_of(refused.content)["error"]["type"] == "es_rejected_execution_exception"
    assert statuses == [200] and health.status_code == 200


@pytest.mark.parametrize("scheme", ["Basic", "ApiKey", "Bearer"])
def test_credentials_pass_through_and_are_never_logged(fake, models, caplog, scheme):
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": f"{scheme} {SECRET}", "X-Opaque-Id": "app-42"}
    config = service_config(fake.url, "docs")
    with running(config, models) as url:
        passed = httpx.get(f"{url}/_cat/indices?v", headers=headers)
        searched = httpx.post(f"{url}/docs/_search", json={"query": {}}, headers=headers)
    assert passed.status_code == 200 and searched.status_code == 200
    assert searched.headers["x-splade-es"].startswith("passthrough; ")
    sent = [seen for seen in fake.seen if seen.get("authorization")]
    assert sent and all(seen["authorization"] == f"{scheme} {SECRET}" for seen in sent)
    assert fake.seen[0]["x-opaque-id"] == "app-42"
    assert SECRET not in caplog.text


def test_an_unreachable_upstream_gives_503_in_the_engines_shape(fake, models, caplog):
    caplog.set_level(logging.DEBUG)
    fake.server.shutdown()
    fake.server.server_close()
    with running(service_config(fake.url, "docs"), models) as url:
        answers = [
            httpx.get(f"{url}/_cat/indices", headers={"Authorization": f"Basic {SECRET}"}),
            httpx.post(f"{url}/docs/_search", json={"query": {"match": {"t": "x"}}}),
        ]
        health = httpx.get(f"{url}/_splade_es/health")
    for answer in answers:
        assert answer.status_code == 503
        assert error_of(answer.content)["error"]["type"] == "upstream_unavailable_exception"
    assert health.status_code == 503 and health.json()["upstream"]["reachable"] is False
    assert SECRET not in caplog.text


def test_an_upstream_that_hangs_up_gives_502(fake, models):
    with running(service_config(fake.url), models) as url:
        answer = httpx.get(f"{url}/reset")
        after = httpx.get(f"{url}/_cat/health")
    assert answer.status_code == 502
    assert error_of(answer.content)["error"]["type"] == "upstream_error_exception"
    assert after.status_code == 200  # the next request goes through again


def test_serve_prints_its_url_last_and_finishes_requests_on_sigterm(fake, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(f'upstream = "{fake.url}"\nindices = ["docs"]\nrerank_k = 20\n')
    command = [sys.executable, "-m", "splade_es", "serve", "--config", str(config), "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        url = process.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read().decode()
        assert httpx.get(f"{url}/_splade_es/health").status_code == 200
        slow: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: slow.append(httpx.get(f"{url}/slow", timeout=30)))
        thread.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        thread.join(30)
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
    assert slow and slow[0].status_code == 200 and slow[0].json() == {"path": "/slow"}


def test_a_bad_config_file_names_the_key(fake, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(f'upstream = "{fake.url}"\nrerank_kk = 20\n')
    command = [sys.executable, "-m", "splade_es", "serve", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "unknown key 'rerank_kk' (did you mean 'rerank_k'?)" in result.stderr


def test_document_ids_and_docker_host_names_pass(fake, models):
    paths = ["/docs/_doc/C%3A%5Cdocs%5Ca.txt", "/docs/_doc/a%2F..%2Fb", "/docs/_doc/C:\\x"]
    with running(service_config(fake.url), models) as url:
        answers = [
            raw_request(url, f"GET {path} HTTP/1.1\r\nHost: search_es:9280\r\n\r\n".encode())
            for path in paths
        ]
    assert [status for status, _ in answers] == [200] * 3
    assert fake.paths == paths  # sent on as they came


def test_a_target_no_url_can_hold_is_refused_on_a_handled_search(fake, models):
    with running(service_config(fake.url, "docs"), models) as url:
        request = b"POST /docs/_search#x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
        status, body = raw_request(url, request)
    assert status == 400
    assert error_of(body)["error"]["type"] == "illegal_argument_exception"


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (RuntimeError(f"Authorization: Basic {SECRET}"), 500, "splade_es_internal_exception"),
        (httpx.DecodingError(f"bad gzip {SECRET}"), 502, "upstream_error_exception"),
    ],
)
def test_an_unexpected_error_answers_in_the_engines_shape(
    fake, models, monkeypatch, caplog, error, status, kind
):
    from splade_es.service import proxy

    async def broken(*args, **kwargs):
        raise error

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(proxy, "forward", broken)
    with running(service_config(fake.url), models) as url:
        answer = httpx.get(f"{url}/_cat/indices", headers={"Authorization": f"Basic {SECRET}"})
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert error_of(answer.content)["error"]["type"] == kind
    assert type(error).__name__ in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(("status", "reads"), [(404, 1), (403, 3), (401, 3)])
def test_a_failed_mapping_read_is_cached_unless_the_credentials_were_refused(models, status, reads):
    refused = b'{"error":{"type":"some_exception"},"status":%d}' % status
    routes = {"/docs/_mapping": (status, refused)}
    with (
        FakeUpstream(routes=routes) as fake,
        running(service_config(fake.url, "docs"), models) as url,
    ):
        answers = [
            httpx.post(f"{url}/docs/_search", json={"query": {"match": {"t": "x"}}})
            for _ in range(3)
        ]
    reason = f"passthrough; index mapping unreadable (status {status})"
    assert [answer.headers["x-splade-es"] for answer in answers] == [reason] * 3
    # a 401/403 says nothing about the next app's credentials: read again each time
    assert fake.paths.count("/docs/_mapping") == reads
    assert fake.paths.count("/docs/_search") == 3


def test_only_the_services_own_endpoints_skip_the_limit(fake, models):
    config = service_config(fake.url, max_concurrency=1)
    with running(config, models) as url:
        slow = threading.Thread(target=lambda: httpx.get(f"{url}/slow"))
        slow.start()
        time.sleep(0.5)
        other = httpx.get(f"{url}/_splade_es/x")
        posted = httpx.post(f"{url}/_splade_es/health")
        metrics = httpx.get(f"{url}/_splade_es/metrics")
        slow.join()
    assert other.status_code == 404
    assert error_of(other.content)["error"]["type"] == "resource_not_found_exception"
    assert posted.status_code == 405 and error_of(posted.content)["status"] == 405
    assert metrics.status_code == 200
    assert fake.paths == ["/slow"]  # nothing of the service's own went upstream
