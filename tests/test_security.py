"""A secured node (TLS with a CA made at start, basic auth) and credential hygiene.

The node is OpenSearch 2.19.4 with the ``opensearch-security`` plugin, started by the
package's own launcher (``secure=True``). Elasticsearch security cannot be tested here: its
x-pack modules are not in the integ-test-zip and the default distribution is not on Maven
Central, so an API key is only ever refused (OpenSearch 2.19 has no Elasticsearch-style API
keys); the tests check that it is sent, refused with a clear 401, and never echoed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cli_runner import cli
from corpus_fixture import DOCS, QUERIES, write_beir, write_jsonl
from secured_service import (
    build_secured_index,
    drop_index,
    engine_error,
    every_log_record,
    node_answer,
)

from conftest import cache_dir
from splade_es.cluster.clients import elasticsearch_client, opensearch_client
from splade_es.cluster.connection import (
    ClusterConfig,
    ClusterError,
    ClusterUnavailableError,
    connect,
)
from splade_es.data.corpus import from_records
from splade_es.engines import NodeConfig, NodeError, NodeInfo, start_node, stop_node
from splade_es.engines.node import node_status
from splade_es.engines.security import (
    Certificates,
    internal_users_yaml,
    make_certificates,
    security_settings,
)
from splade_es.engines.spec import secured_opensearch_spec
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.service import IndexRule, ServiceConfig, ServiceModels, ServiceThread
from splade_es.service.models import warm_up

pytestmark = pytest.mark.security

WRONG_PASSWORD = "wrong-Pa55word-zq7WRONGsecret"
API_KEY = base64.b64encode(b"apikey-id-zq7:apikey-SECRET-zq7value").decode()
INDEX = "security-test"


@pytest.fixture(scope="session")
def secured_node() -> Iterator[tuple[NodeInfo, Path]]:
    """One secured OpenSearch node for this module, stopped at the end."""
    state = Path(tempfile.mkdtemp(prefix="splade-es-secured-state-")) / "opensearch.json"
    config = NodeConfig(
        engine="opensearch", state_file=state, cache_dir=cache_dir(), heap="512m", secure=True
    )
    info = start_node(config, os.environ)
    try:
        yield info, state
    finally:
        stop_node(state)
        shutil.rmtree(state.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def node(secured_node: tuple[NodeInfo, Path]) -> NodeInfo:
    return secured_node[0]


@pytest.fixture(scope="session")
def password(node: NodeInfo) -> str:
    assert node.access is not None
    return node.access.password()


@pytest.fixture(scope="session")
def good(node: NodeInfo, password: str) -> ClusterConfig:
    assert node.access is not None
    return ClusterConfig(
        url=node.url, username="admin", password=password, ca_certs=node.access.ca_certs
    )


@pytest.fixture(scope="session")
def other_ca(node: NodeInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA certificate of another, unrelated authority."""
    folder = tmp_path_factory.mktemp("other-ca")
    return make_certificates(Path(node.java_home), folder).ca_pem


def secrets_of(password: str) -> list[str]:
    """Every form in which a credential could leak."""
    return [
        password,
        WRONG_PASSWORD,
        API_KEY,
        base64.b64decode(API_KEY).decode(),
        base64.b64encode(f"admin:{password}".encode()).decode(),
        base64.b64encode(f"admin:{WRONG_PASSWORD}".encode()).decode(),
    ]


def assert_clean(text: str, password: str, where: str) -> None:
    for secret in secrets_of(password):
        assert secret not in text, f"a credential leaked into {where}"


def full_text(error: BaseException) -> str:
    """The message and the whole chained traceback, as a user would see it."""
    return "".join(traceback.format_exception(error))


@pytest.mark.opensearch
def test_the_node_is_tls_only_with_a_private_password_file(node, secured_node, password):
    assert node.url.startswith("https://127.0.0.1:") and node.version == "2.19.4"
    assert node.access is not None and node.access.username == "admin"
    assert stat.S_IMODE(node.access.password_file.stat().st_mode) == 0o600
    assert node.access.ca_certs.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert len(password) >= 24
    # The same state file: the running node is found again (health over TLS with auth).
    config = NodeConfig(
        engine="opensearch",
        state_file=secured_node[1],
        cache_dir=cache_dir(),
        secure=True,
    )
    assert start_node(config, os.environ).pid == node.pid
    info, health = node_status(secured_node[1])
    assert info == node and health is not None and health["status"] in ("green", "yellow")
    # A plain node is not silently handed out in place of a secured one.
    plain = NodeConfig(engine="opensearch", state_file=secured_node[1], cache_dir=cache_dir())
    with pytest.raises(NodeError, match=r"A secured opensearch node is already running"):
        start_node(plain, os.environ)


@pytest.mark.parametrize("engine", ["auto", "opensearch"])
@pytest.mark.opensearch
def test_tls_verification_is_on_by_default(node, password, engine):
    config = ClusterConfig(url=node.url, engine=engine, username="admin", password=password)
    assert config.verify_certs is True
    with pytest.raises(ClusterUnavailableError, match=r"certificate verify failed") as caught:
        connect(config)
    message = str(caught.value)
    assert "--ca-certs <the cluster's CA PEM>" in message and node.url in message
    assert caught.value.error_type == "tls_verification_failed"
    assert_clean(full_text(caught.value), password, "the TLS error")


@pytest.mark.parametrize("engine", ["auto", "opensearch"])
@pytest.mark.opensearch
def test_a_wrong_ca_fails_clearly(node, password, other_ca, engine):
    config = ClusterConfig(
        url=node.url, engine=engine, username="admin", password=password, ca_certs=other_ca
    )
    with pytest.raises(ClusterUnavailableError, match=r"certificate verify failed") as caught:
        connect(config)
    assert "--ca-certs" in str(caught.value)
    assert_clean(full_text(caught.value), password, "the wrong-CA error")


@pytest.mark.opensearch
def test_skipping_verification_is_an_explicit_opt_in(node, password):
    assert ClusterConfig(url=node.url).verify_certs is True
    insecure = ClusterConfig(
        url=node.url, engine="opensearch", username="admin", password=password, verify_certs=False
    )
    cluster = connect(insecure)
    try:
        assert cluster.engine == "opensearch"
    finally:
        cluster.close()


@pytest.mark.opensearch
def test_basic_auth_works_end_to_end(good, splade_encoder):
    cluster = connect(good)  # engine auto: detected through the credentials
    try:
        assert (cluster.engine, cluster.version) == ("opensearch", "2.19.4")
        name = f"{INDEX}-basic"
        prepare_index(cluster, splade_encoder, name)
        report = index_documents(
            cluster,
            from_records(DOCS),
            [SpladeFields(splade_encoder)],
            BulkConfig(index=name, progress=False),
        )
        assert report.indexed == len(DOCS) and report.failed == 0
        cluster.request("POST", f"/{name}/_refresh")
        assert cluster.request("GET", f"/{name}/_count")["count"] == len(DOCS)
        searcher = Searcher(cluster, splade_encoder, SearchConfig(index=name))
        for text, relevant in QUERIES.values():
            assert searcher.search(text, k=3)[0].id == relevant
        cluster.request("DELETE", f"/{name}")
    finally:
        cluster.close()


@pytest.mark.parametrize("engine", ["auto", "opensearch"])
@pytest.mark.opensearch
def test_a_wrong_password_is_a_clear_401(node, good, password, engine):
    config = ClusterConfig(
        url=node.url,
        engine=engine,
        username="admin",
        password=WRONG_PASSWORD,
        ca_certs=good.ca_certs,
    )
    with pytest.raises(ClusterError, match=r"Authentication failed .*user 'admin'") as caught:
        connect(config)
    assert caught.value.status == 401
    assert_clean(full_text(caught.value), password, "the 401 error")
    assert WRONG_PASSWORD not in repr(config)


@pytest.mark.opensearch
def test_no_credentials_is_a_401_that_says_what_to_pass(node, good):
    config = ClusterConfig(url=node.url, engine="opensearch", ca_certs=good.ca_certs)
    with pytest.raises(ClusterError, match=r"without credentials: pass --username") as caught:
        connect(config)
    assert caught.value.status == 401


@pytest.mark.parametrize("engine", ["auto", "opensearch"])
@pytest.mark.opensearch
def test_an_api_key_is_sent_and_refused_without_echo(node, good, password, engine):
    config = ClusterConfig(url=node.url, engine=engine, api_key=API_KEY, ca_certs=good.ca_certs)
    # Both clients put the key in the Authorization header ...
    assert elasticsearch_client(config)._headers["authorization"] == f"ApiKey {API_KEY}"
    opensearch = opensearch_client(config)
    sent = opensearch.transport.connection_pool.connections[0].headers
    assert sent["authorization"] == f"ApiKey {API_KEY}"
    # ... which OpenSearch 2.19 does not know: a clear 401 naming the key, not its value.
    with pytest.raises(ClusterError, match=r"Authentication failed .*the API key") as caught:
        connect(config)
    assert caught.value.status == 401
    assert_clean(full_text(caught.value), password, "the API-key error")
    assert API_KEY not in repr(config)


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return cli("-vv", *args, env=env, cwd=cwd)  # -vv: debug logs of the package and clients


@pytest.mark.opensearch
def test_credentials_never_appear_in_output_logs_or_files(node, good, password, tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("ES_")}
    env = {
        **base,
        "ES_URL": node.url,
        "ES_USERNAME": "admin",
        "ES_PASSWORD": password,
        "ES_CA_CERTS": str(good.ca_certs),
    }
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [*DOCS, {"_id": "bad", "text": ""}])
    dead = tmp_path / "dead.jsonl"
    name = f"{INDEX}-cli"
    runs = {
        # progress bars on, debug logging, one document dead-lettered (exit 1)
        "index": run_cli(
            ["index", str(corpus), "--index", name, "--dead-letter", str(dead)], env, tmp_path
        ),
        "search": run_cli(["search", "espresso coffee", "--index", name, "--json"], env, tmp_path),
        "eval": run_cli(
            [
                "eval",
                "--corpus",
                str(write_beir(tmp_path / "tiny")),
                "--out",
                str(tmp_path / "report"),
                "--index",
                f"{name}-eval",
            ],
            env,
            tmp_path,
        ),
        "wrong password": run_cli(
            ["search", "espresso", "--index", name],
            {**env, "ES_PASSWORD": WRONG_PASSWORD},
            tmp_path,
        ),
        "api key": run_cli(
            ["search", "espresso", "--index", name],
            {k: v for k, v in env.items() if k not in ("ES_USERNAME", "ES_PASSWORD")}
            | {"ES_API_KEY": API_KEY},
            tmp_path,
        ),
        "no CA": run_cli(
            ["search", "espresso", "--index", name],
            {k: v for k, v in env.items() if k != "ES_CA_CERTS"},
            tmp_path,
        ),
    }
    assert runs["index"].returncode == 1, runs["index"].stderr[-2000:]
    assert "1 document(s) were not indexed" in runs["index"].stderr
    assert "DEBUG" in runs["index"].stderr  # the debug logs were really on
    assert "indexing: " in runs["index"].stderr  # and the progress bar, as log lines
    assert runs["search"].returncode == 0, runs["search"].stderr[-2000:]
    assert json.loads(runs["search"].stdout)[0]["_id"] == "cook-2"
    assert runs["eval"].returncode == 0, runs["eval"].stderr[-2000:]
    assert runs["wrong password"].returncode == 1
    assert "Authentication failed" in runs["wrong password"].stderr
    assert "the API key" in runs["api key"].stderr and runs["api key"].returncode == 1
    assert "--ca-certs" in runs["no CA"].stderr and runs["no CA"].returncode == 1
    for what, result in runs.items():
        assert_clean(result.stdout + result.stderr, password, f"the output of {what}")
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert dead in written and (tmp_path / "report" / "report.json") in written
    for path in written:
        assert_clean(path.read_bytes().decode(errors="replace"), password, str(path))
    for path in Path(node.work_dir, "logs").rglob("*"):
        if path.is_file():
            assert_clean(path.read_bytes().decode(errors="replace"), password, str(path))
    assert_clean(Path(node.log_file).read_text(errors="replace"), password, "the node log")
    cluster = connect(good)
    try:
        for index in (name, f"{name}-eval"):
            cluster.request("DELETE", f"/{index}")
    finally:
        cluster.close()


def test_secure_node_choices_are_checked_at_the_boundary(tmp_path):
    with pytest.raises(ValueError, match=r"OpenSearch only, not 'elasticsearch'.*--engine"):
        NodeConfig(
            engine="elasticsearch", state_file=tmp_path / "s.json", cache_dir=tmp_path, secure=True
        )
    with pytest.raises(ValueError, match=r"not '2\.19\.6': pass --version 2\.19\.4"):
        secured_opensearch_spec("2.19.6")
    spec = secured_opensearch_spec()
    assert spec.key == "opensearch-2.19.4-opensearch-security"
    assert (
        spec.artifacts[-1].coordinates == "org.opensearch.plugin:opensearch-security:2.19.4.0:zip"
    )


def test_configuration_files_hold_no_plaintext_password(tmp_path):
    certs = Certificates(
        tmp_path / "certs" / "ca.pem",
        tmp_path / "certs" / "node.p12",
        tmp_path / "certs" / "t.p12",
        password="store-SECRET-zq7",
    )
    assert "store-SECRET-zq7" not in repr(certs)
    settings = security_settings(certs, tmp_path)
    assert "keystore_filepath: certs/node.p12" in settings
    assert "plugins.security.ssl.http.enabled: true" in settings
    users = internal_users_yaml("admin", "$2y$12$abcdefghijklmnopqrstuv")
    assert '"admin":' in users and '"$2y$12$abcdefghijklmnopqrstuv"' in users


# The reranking service (``splade-es serve``) in front of the secured node: it keeps no
# credentials of its own, so each app's pass through to the node, which answers them.

RERANK_K = 5
SERVICE_TEXT = "does aspirin prevent heart attacks the risk of a star and the light in the water"
SERVICE_SEARCH = {"query": {"match": {"text": SERVICE_TEXT}}, "size": 3}


def basic(username: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


REFUSED = {
    "no credentials": {},
    "wrong password": basic("admin", WRONG_PASSWORD),
    "API key": {"Authorization": f"ApiKey {API_KEY}"},
    "bearer token": {"Authorization": f"Bearer {API_KEY}"},
}


@pytest.fixture(scope="module")
def service_index(good, splade_encoder, colbert_encoder) -> Iterator[str]:
    """A ``sec-svc-...`` splade-es index with ColBERT embeddings, built through TLS + auth."""
    cluster = connect(good)
    try:
        name = build_secured_index(cluster, splade_encoder, colbert_encoder)
        try:
            yield name
        finally:
            drop_index(cluster, name)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def service_models(colbert_encoder) -> ServiceModels:
    models = ServiceModels(colbert_encoder)
    warm_up(models)  # as load_models does: the first rerank is within its budget
    return models


@pytest.fixture
def service_config(good, service_index) -> ServiceConfig:
    """The service in front of the secured node, trusting its CA (a fresh one per test:
    its index cache then holds only what this test's requests put there)."""
    return ServiceConfig(
        upstream=good.url,
        port=0,
        indices=(IndexRule(service_index, RERANK_K),),
        ca_certs=good.ca_certs,
        rerank_timeout_ms=10_000,  # a loaded CI machine: the rerank, not the budget, is tested
    )


@pytest.mark.opensearch
def test_the_service_reranks_for_an_app_with_basic_auth(
    good, password, service_index, service_config, service_models, colbert_encoder
):
    from opensearchpy import OpenSearch

    path = f"/{service_index}/_search"
    with ServiceThread(service_config, service_models) as url:
        client = OpenSearch(hosts=[url], http_auth=("admin", password))
        try:
            body = client.search(index=service_index, body=SERVICE_SEARCH)
            connection = client.transport.get_connection()
            status, headers, raw = connection.perform_request(
                "POST", path, body=json.dumps(SERVICE_SEARCH)
            )
        finally:
            client.close()
    assert status == 200 and headers["X-Splade-Es"] == f"reranked {RERANK_K}"
    hits = body["hits"]["hits"]
    assert [hit["_id"] for hit in json.loads(raw)["hits"]["hits"]] == [h["_id"] for h in hits]
    # The library's answer: the node's first stage, its head reranked in process.
    cluster = connect(good)
    try:
        depth = {"query": SERVICE_SEARCH["query"], "size": RERANK_K}
        first = cluster.request("POST", path, body=depth)["hits"]["hits"]
        head = open_reranker(cluster, service_index, colbert_encoder).rerank(SERVICE_TEXT, first)
    finally:
        cluster.close()
    assert len(first) == RERANK_K
    assert [hit["_id"] for hit in hits] == [hit["_id"] for hit in head.hits][:3]
    colbert = {hit["_id"]: hit["_colbert_score"] for hit in head.hits}
    for hit in hits:
        assert hit["_colbert_score"] == pytest.approx(colbert[hit["_id"]], abs=1e-5)
        assert hit["_score"] == hit["_colbert_score"]
        assert isinstance(hit["_first_stage_score"], float) and "fields" not in hit


@pytest.mark.parametrize("who", list(REFUSED))
@pytest.mark.opensearch
def test_refused_credentials_get_the_nodes_own_answer(
    good, password, service_index, service_config, service_models, who
):
    headers = REFUSED[who]
    requests = [
        ("POST", f"/{service_index}/_search", SERVICE_SEARCH),  # a reranked index
        ("GET", f"/{service_index}/_mapping", None),  # passed through
        ("GET", "/_cat/indices", None),
    ]
    with ServiceThread(service_config, service_models) as url:
        # A search the app may run first (the index then known to the service) and none.
        warmed = httpx.post(
            f"{url}{requests[0][1]}", json=SERVICE_SEARCH, headers=basic("admin", password)
        )
        assert warmed.headers["x-splade-es"] == f"reranked {RERANK_K}"
        for method, path, body in requests:
            direct = node_answer(good, method, path, headers, body)
            proxied = httpx.request(method, url + path, headers=headers, json=body, timeout=30)
            assert direct.status_code == 401, direct.text
            assert (proxied.status_code, proxied.content) == (401, direct.content), path
            for name in ("content-type", "www-authenticate"):
                assert proxied.headers[name] == direct.headers[name], (path, name)
            if path.endswith("/_search"):
                assert proxied.headers["x-splade-es"] == "passthrough; first stage answered 401"
    with ServiceThread(service_config, service_models) as url:  # the index not known yet
        proxied = httpx.post(f"{url}{requests[0][1]}", json=SERVICE_SEARCH, headers=headers)
    direct = node_answer(good, "POST", requests[0][1], headers, SERVICE_SEARCH)
    assert (proxied.status_code, proxied.content) == (401, direct.content)
    assert proxied.headers["x-splade-es"].startswith("passthrough; ")


@pytest.mark.opensearch
def test_a_refused_app_does_not_stop_reranking_for_the_others(
    password, service_index, service_config, service_models
):
    path = f"/{service_index}/_search"
    with ServiceThread(service_config, service_models) as url:
        refused = httpx.post(url + path, json=SERVICE_SEARCH, headers=REFUSED["no credentials"])
        allowed = httpx.post(url + path, json=SERVICE_SEARCH, headers=basic("admin", password))
    assert refused.status_code == 401 and allowed.status_code == 200
    assert allowed.headers["x-splade-es"] == f"reranked {RERANK_K}"


@pytest.mark.opensearch
def test_no_credential_reaches_the_service_logs_metrics_or_health(
    password, service_index, service_config, service_models, other_ca, caplog
):
    path = f"/{service_index}/_search"
    wrong_ca = replace(service_config, ca_certs=other_ca)
    answers: list[httpx.Response] = []
    with (
        ServiceThread(service_config, service_models) as url,
        ServiceThread(wrong_ca, service_models) as unverified,
        every_log_record(caplog),  # after the services: uvicorn set its loggers up again
    ):
        for headers in (basic("admin", password), *REFUSED.values()):
            for base in (url, unverified):
                answers.append(httpx.post(base + path, json=SERVICE_SEARCH, headers=headers))
                answers.append(httpx.get(f"{base}/_cat/indices?v", headers=headers))
        pages = {
            f"{name} of {base}": httpx.get(f"{base}/_splade_es/{name}")
            for base in (url, unverified)
            for name in ("health", "metrics")
        }
    assert answers[0].headers["x-splade-es"] == f"reranked {RERANK_K}"
    assert [answer.status_code for answer in answers[2:4]] == [503, 503]  # the wrong CA
    loggers = {record.name.split(".")[0] for record in caplog.records}
    assert {"httpx", "httpcore", "splade_es"} <= loggers, loggers  # the logs were on
    assert any(record.levelname == "DEBUG" for record in caplog.records)
    assert_clean(caplog.text, password, "the service's logs")
    for record in caplog.records:
        assert_clean(repr(record.args) + repr(record.__dict__), password, "a log record")
    for answer in answers:
        assert_clean(answer.text + repr(answer.headers.raw), password, "an answer")
    for what, page in pages.items():
        assert page.status_code in (200, 503)
        assert_clean(page.text + repr(page.headers.raw), password, f"the {what}")


@pytest.mark.opensearch
def test_a_wrong_ca_is_an_engine_error_not_a_hang(
    password, service_index, service_config, service_models, other_ca
):
    config = replace(service_config, ca_certs=other_ca)
    started = time.monotonic()
    with ServiceThread(config, service_models) as url:
        health = httpx.get(f"{url}/_splade_es/health", timeout=30)
        searched = httpx.post(
            f"{url}/{service_index}/_search",
            json=SERVICE_SEARCH,
            headers=basic("admin", password),
            timeout=30,
        )
        passed = httpx.get(f"{url}/_cat/indices", headers=basic("admin", password), timeout=30)
    assert time.monotonic() - started < 20
    assert health.status_code == 503
    report = health.json()
    assert report["status"] == "upstream unreachable" and report["upstream"]["reachable"] is False
    assert report["upstream"]["url"] == service_config.upstream
    for answer in (searched, passed):
        assert answer.status_code in (502, 503), answer.text
        error = engine_error(answer)
        assert error["type"] in ("upstream_unavailable_exception", "upstream_error_exception")
        assert "certificate failed verification: set ca_certs" in error["reason"]
    assert "ca_certs" in report["upstream"]["problem"]


def test_a_missing_ca_file_is_refused_naming_ca_certs(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    rule = (IndexRule("sec-svc-docs"),)
    with pytest.raises(ValueError, match=r"ca_certs='.*no-such-ca\.pem': no such file"):
        ServiceConfig(upstream="https://127.0.0.1:9200", port=0, indices=rule, ca_certs=missing)
    with pytest.raises(ValueError, match=r"ca_certs='.*': no such file"):
        ServiceConfig(upstream="https://127.0.0.1:9200", port=0, indices=rule, ca_certs=tmp_path)


def test_a_ca_file_that_is_not_a_pem_is_refused_naming_ca_certs(tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"ca_certs='.*ca\.pem' holds no readable CA certificate"):
        ServiceConfig(upstream="https://127.0.0.1:9200", port=0, ca_certs=garbage)
