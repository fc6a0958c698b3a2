"""Bad and hostile requests against the drop-in service (``splade-es serve``), for RELIABILITY.md.

The service runs in a thread before the real node, on a small splade-es index built here
(``svcbad-...``, deleted after) holding a document whose stored embeddings are corrupt; a
counting TCP relay between service and node shows any request that reaches the node. Each
case of :func:`catalog` goes ``--repeat`` times over a raw socket (no client normalises the
bytes), each within ``--client-timeout``, and once straight to the node. Targets: no 5xx, no
request unanswered, every error in the engines' shape (``error.type``, ``status``), refused
cases never reaching the node, the node's own status class for the cases it judges.

Usage:
    python benchmarks/service_bad_requests.py --es-url http://127.0.0.1:9200 --repeat 5
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from load import corpus_and_queries, ensure_index

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from splade_es.cluster.connection import Cluster, ClusterConfig, connect
from splade_es.data.corpus import Document, Rejected
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.service import IndexRule, ServiceConfig, ServiceModels, ServiceThread
from splade_es.service.models import warm_up

MAX_BODY = 1024 * 1024
MAX_CONCURRENCY = 4
QUERY = "does aspirin prevent heart attacks"
CORRUPT_ID = "svcbad-corrupt-blob"
NOTE = "Upstream requests: request lines seen by a TCP relay between the service and the node."
Address = tuple[str, int]
Row = dict[str, Any]
_LINE = re.compile(
    rb"(GET|POST|PUT|HEAD|DELETE|PATCH|OPTIONS|CONNECT) (\S{1,999}) HTTP/1\.[01]\r\n"
)


@dataclass(frozen=True)
class Case:
    """One bad request: the statuses ``allowed`` (``None``: the node's own class), whether
    it may reach the node (``upstream``), copies sent at once (``burst``; 429s expected)."""

    name: str
    request: bytes
    allowed: frozenset[int] | None = None
    upstream: bool = True
    burst: int = 1


@dataclass(frozen=True)
class Answer:
    """One answer (``status`` None: none came, ``failure`` says why)."""

    status: int | None
    header: str
    shaped: bool
    ms: float
    body: bytes = b""
    failure: str = ""


class CountingRelay:
    """A TCP relay to ``target`` that records the HTTP request lines passing towards it."""

    def __init__(self, target: Address) -> None:
        self.target = target
        self.seen: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            threading.Thread(target=self._pump, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        tail = b""  # matches ending in it were counted already
        with suppress(OSError):
            while data := source.recv(65536):
                if count:
                    text = tail + data
                    found = [m for m in _LINE.finditer(text) if m.end() > len(tail)]
                    self.seen.extend(f"{m[1].decode()} {m[2].decode()[:80]}" for m in found)
                    tail = text[-2048:]
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def raw(method: str, target: str, body: bytes = b"", headers: Sequence[str] = ()) -> bytes:
    """A request as bytes (a Content-Length unless ``headers`` say chunked)."""
    lines = [f"{method} {target} HTTP/1.1", "Connection: close", *headers]
    if not any(h.lower().startswith("host:") for h in headers):
        lines.append("Host: 127.0.0.1")
    if body and not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def catalog(index: str, missing: str, text_kb: int = 100) -> list[Case]:
    """The bad requests, against the reranked ``index`` (``missing``: an unknown index)."""
    match = {"match": {"text": QUERY}}
    big = json.dumps({"query": {"match": {"text": "x" * (2 * MAX_BODY)}}}).encode()
    words = " ".join(f"w{i % 997}" for i in range(text_kb * 300))[: text_kb * 1024]
    te = ("Transfer-Encoding: chunked", "Content-Type: application/json")
    surrogate = b'{"query": {"match": {"text": "aspirin %s heart"}}}'
    no, refused, too_large = False, frozenset({400}), frozenset({413})

    def on(body: dict[str, Any] | bytes, *headers: str, target: str = index) -> bytes:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return raw("POST", f"/{target}/_search", data, headers)

    return [
        Case("malformed JSON", on(b'{"query": {"match": ')),
        Case("JSON, not an object", on(b'[1, "two", {"three": 3}]')),
        Case("gzip declared, not gzip", on({"query": match}, "Content-Encoding: gzip")),
        Case("body > limit, Content-Length", on(big), too_large, no),
        Case("body > limit, chunked", on(chunked(big), *te), too_large, no),
        Case("body > limit, chunked, /_count", raw("POST", "/_count", chunked(big), te), too_large),
        Case("absolute-form target", raw("GET", "http://evil.example/"), refused, no),
        Case("'..' segment", raw("GET", f"/{index}/../_cluster/settings"), refused, no),
        Case("'%2e%2e' segment", raw("GET", f"/{index}/%2e%2e/_cluster/settings"), refused, no),
        Case("'#' in the target", raw("GET", f"/{index}/_doc/a#b"), refused, no),
        Case("CONNECT", raw("CONNECT", "127.0.0.1:9200"), refused, no),
        Case("Host: path, userinfo", raw("GET", "/", headers=["Host: evil.x/@a"]), refused, no),
        Case("Host: control byte", raw("GET", "/", headers=["Host: a\x01b"]), refused, no),
        Case("Host: two headers", raw("GET", "/", headers=["Host: a", "Host: b"]), refused, no),
        Case("lone surrogate, \\ud800 escape", on(surrogate % b"\\ud800")),
        Case("lone surrogate, raw bytes", on(surrogate % b"\xed\xa0\x80")),
        Case("unknown index", on({"query": match}, target=missing)),
        Case("size: -1", on({"query": match, "size": -1})),
        Case("from: -5", on({"query": match, "from": -5})),
        Case("sort", on({"query": match, "sort": ["_doc"]})),
        Case("search_after", on({"query": match, "sort": ["_doc"], "search_after": [3]})),
        Case("knn", on({"knn": {"field": "v", "query_vector": [1], "k": 1, "num_candidates": 9}})),
        Case(f"{text_kb} kB query text", on({"query": {"match": {"text": words}}})),
        Case("64 at once (limit 4)", on({"query": match}), frozenset({200, 429}), burst=64),
        Case("/_splade_es/nope", raw("GET", "/_splade_es/nope"), frozenset({404}), no),
        Case("corrupt stored embeddings", on({"query": match, "size": 100}), frozenset({200})),
    ]


def exchange(address: Address, request: bytes, timeout_s: float) -> Answer:
    """``request`` written on a thread (so an early answer is read), and its answer."""
    started = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=timeout_s) as sock:
            threading.Thread(target=_send, args=(sock, request), daemon=True).start()
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read()
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, "", False, _ms(started), failure=type(error).__name__)
    status, header = response.status, response.getheader("x-splade-es", "")
    return Answer(status, header, engine_shaped(body, status), _ms(started), body)


def engine_shaped(body: bytes, status: int) -> bool:
    """Whether an error body is ``{"error": {"type": ...}, "status": status}`` (2xx: True)."""
    if status < 400:
        return True
    with suppress(ValueError, LookupError, TypeError):
        decoded = json.loads(body)
        return bool(decoded["status"] == status and isinstance(decoded["error"]["type"], str))
    return False


def run_case(case: Case, service: Address, relay: CountingRelay, repeat: int, wait: float) -> Row:
    """``case`` sent ``repeat`` times (bursts at once) through the service, once to the node."""
    before, last = len(relay.seen), time.perf_counter()
    answers: list[Answer] = []
    for round_ in range(repeat):
        with ThreadPoolExecutor(case.burst) as pool:
            answers += pool.map(lambda _: exchange(service, case.request, wait), range(case.burst))
        if time.perf_counter() - last >= 5.0:  # a progress line every few seconds
            last = time.perf_counter()
            print(f"  {case.name}: {(round_ + 1) * case.burst}/{repeat * case.burst}", flush=True)
    reached = relay.seen[before:]
    direct = exchange(relay.target, case.request, wait) if case.burst == 1 else None
    return summary(case, answers, direct, reached)


def summary(case: Case, answers: list[Answer], direct: Answer | None, reached: list[str]) -> Row:
    statuses = Counter(str(a.status) if a.status else f"no answer ({a.failure})" for a in answers)
    errors = [a for a in answers if a.status and a.status >= 400]
    row: Row = {
        "case": case.name,
        "allowed": sorted(case.allowed) if case.allowed else "the node's class",
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "errors": len(errors),
        "engine_shaped_errors": sum(a.shaped for a in errors),
        "headers": dict(Counter(a.header or "none" for a in answers)),
        "max_ms": round(max(a.ms for a in answers), 1),
        "upstream_requests": len(reached),
        "upstream_seen": sorted(set(reached))[:5],
        "node_status": (direct.status or direct.failure) if direct else None,
    }
    if case.name.startswith("corrupt"):
        row["corrupt_hit"] = corrupt_hits(answers)
    row["verdict"] = verdict(case, row)
    return row


def corrupt_hits(answers: list[Answer]) -> dict[str, int]:
    """How the corrupt document came back: ``returned`` and ``colbert_score_null`` counts."""
    found: Counter[str] = Counter()
    for answer in answers:
        try:
            hits = json.loads(answer.body)["hits"]["hits"] if answer.status == 200 else []
        except (ValueError, KeyError, TypeError):
            hits = []
        for hit in (h for h in hits if h.get("_id") == CORRUPT_ID):
            found["returned"] += 1
            found["colbert_score_null"] += hit.get("_colbert_score") is None
    return dict(found)


def same_class(row: Row) -> bool | None:
    """Whether every service answer has the node's status class (None: not compared)."""
    node = row["node_status"]
    if not isinstance(node, int) or row["allowed"] != "the node's class":
        return None
    return all(s.isdigit() and s[0] == str(node)[0] for s in row["statuses"])


def verdict(case: Case, row: Row) -> str:
    """``pass``, or ``FAIL: <the targets missed>``."""
    codes = [int(s) for s in row["statuses"] if s.isdigit()]
    missed = ["no answer"] if len(codes) < len(row["statuses"]) else []
    missed += ["5xx"] if any(c >= 500 for c in codes) else []
    missed += ["error not engine-shaped"] if row["engine_shaped_errors"] < row["errors"] else []
    if case.allowed is not None and not set(codes) <= case.allowed:
        missed.append(f"expected {sorted(case.allowed)}")
    if case.burst > MAX_CONCURRENCY and 429 not in codes:
        missed.append("no 429")
    if not case.upstream and row["upstream_requests"]:
        missed.append("reached the upstream")
    if same_class(row) is False:
        missed.append(f"node answered {row['node_status']}")
    return "pass" if not missed else "FAIL: " + ", ".join(missed)


@contextmanager
def service_for(upstream: str, colbert: ColbertEncoder) -> Iterator[tuple[Address, CountingRelay]]:
    """The service in a thread, in front of the relay, in front of ``upstream``."""
    host, port = upstream.removeprefix("http://").rstrip("/").rsplit(":", 1)
    relay = CountingRelay((host, int(port)))
    models = ServiceModels(colbert)
    warm_up(models)
    rules, limit = (IndexRule("svcbad-*", 100),), MAX_CONCURRENCY
    config = ServiceConfig(relay.url, port=0, indices=rules, max_body_bytes=MAX_BODY)
    config = replace(config, max_concurrency=limit)
    try:
        with ServiceThread(config, models) as url:
            service_host, service_port = url.removeprefix("http://").rsplit(":", 1)
            yield (service_host, int(service_port)), relay
    finally:
        relay.listener.close()


def write_corrupt(cluster: Cluster, index: str) -> dict[str, Any]:
    """Two documents written straight to the node, as another tool would: an embeddings
    value that is base64 but no ColBERT blob, and one that is not base64 (item statuses)."""
    meta = cluster.request("GET", f"/{index}/_mapping")[index]["mappings"]["_meta"]
    f = meta["colbert_rerank"]["field"]
    blob = base64.b64encode(b"PK\x03\x04 not a colbert blob").decode()
    values = {CORRUPT_ID: blob, "svcbad-corrupt-b64": "%%% not base64 %%%"}
    docs = [
        {"_index": index, "_id": i, "_source": {"text": QUERY, f: v}} for i, v in values.items()
    ]
    outcomes = cluster.bulk(docs)
    cluster.request("POST", f"/{index}/_refresh")
    return {item["index"]["_id"]: item["index"]["status"] for _, item in outcomes}


def run_engine(
    engine: str, url: str, documents: list[Document | Rejected], repeat: int, wait: float
) -> Row:
    """Build the index, start the service, send every case; the index is deleted after."""
    cluster = connect(ClusterConfig(url=url, engine=engine))
    index = f"svcbad-{uuid.uuid4().hex[:8]}"
    splade, colbert = encoders()
    try:
        print(ensure_index(cluster, index, documents, splade, colbert))
        written = write_corrupt(cluster, index)
        rows = []
        with service_for(url, colbert) as (service, relay):
            for case in catalog(index, f"svcbad-missing-{uuid.uuid4().hex[:6]}"):
                print(f"[{engine}] {case.name}", flush=True)
                rows.append(run_case(case, service, relay, repeat, wait))
        return {"engine": f"{cluster.engine} {cluster.version}", "corrupt": written, "cases": rows}
    finally:
        gone = {"ignore_unavailable": "true"}  # the index and its ColBERT codebook index
        cluster.request("DELETE", f"/{index},{index}-colbert-codebook", params=gone)
        cluster.close()


@cache
def encoders() -> tuple[SpladeEncoder, ColbertEncoder]:
    """The models, loaded once (indexing: SPLADE and ColBERT; the service: ColBERT)."""
    splade = SpladeEncoder(EncoderConfig(model="splade-tiny", device="cpu"))
    return splade, ColbertEncoder(ColbertConfig(device="cpu"))


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """The table of every case (one row per engine and case)."""
    lines = ["# Drop-in service: bad and hostile requests", "", f"`{command}`", "", NOTE, ""]
    lines += [
        "| engine | case | requests | statuses | engine-shaped errors | X-Splade-Es | max ms "
        "| upstream requests | same class as the node? | verdict |",
        "|---|---|---:|---|---|---|---:|---:|---|---|",
    ]
    for result in results:
        for row in result["cases"]:
            node = row["node_status"]
            agree = {None: f"n/a (node {node})", True: f"yes ({node})", False: f"no ({node})"}
            statuses = ", ".join(f"{s} x{n}" for s, n in row["statuses"].items())
            headers = "; ".join(f"`{h[:40]}` x{n}" for h, n in row["headers"].items())
            shaped, same = f"{row['engine_shaped_errors']}/{row['errors']}", same_class(row)
            cells = [result["engine"], row["case"], row["requests"], statuses, shaped, headers]
            cells += [f"{row['max_ms']:.0f}", row["upstream_requests"]]
            cells += [agree[same] if node is not None else "n/a", row["verdict"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    bad = [(x["engine"], r["case"]) for x in results for r in x["cases"] if r["verdict"] != "pass"]
    lines += ["", f"Failing cases: {'; '.join(f'{e}: {c}' for e, c in bad) or 'none'}.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    made = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    made.add_argument("--es-url", default=os.environ.get("ES_URL"))
    made.add_argument("--opensearch-url")
    made.add_argument("--corpus", default="../shared/datasets/scifact", help="BEIR or 'stdlib'")
    made.add_argument("--max-docs", type=int, default=100)
    made.add_argument("--repeat", type=int, default=5, help="Times each case is sent.")
    made.add_argument("--client-timeout", type=float, default=30.0, help="Seconds per request.")
    made.add_argument("--out", type=Path, default=Path("benchmarks/results/service"))
    args = made.parse_args(argv)
    documents, _ = corpus_and_queries(args.corpus, args.max_docs, 1)
    urls = {"elasticsearch": args.es_url, "opensearch": args.opensearch_url}
    sizes = (args.repeat, args.client_timeout)
    results = [run_engine(e, u, documents, *sizes) for e, u in urls.items() if u]
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    command = f"python benchmarks/service_bad_requests.py {shown}".strip()
    report = markdown(results, command)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "results": results}
    (args.out / "bad_requests.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "bad_requests.md").write_text(report)
    print(report)
    return results


def _send(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):
        sock.sendall(data)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
