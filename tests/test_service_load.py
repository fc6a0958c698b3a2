"""The drop-in service's load benchmark (benchmarks/service_load.py), scaled down.

The pure parts (error shapes, answer agreement with score ties, the outage phases and
targets, the smoke options) are checked on made-up samples. Then the script runs at smoke
size: the throughput comparison through ``main`` against the session's Elasticsearch node
(2 clients x 5 s per path, 40 documents, 4 queries), and the upstream loss on a node of its
own that is SIGKILLed and relaunched while the clients run. Timing targets are the full
benchmark's business; here what must hold at any size: no errors, every answer reranked
and equal to the library's, every request answered, errors in the engines' shape, recovery.
"""

from __future__ import annotations

import json

import pytest
from load import corpus_and_queries
from load_generator import Response
from service_client import ServiceAnswer, ServiceOptions, engine_error_shape, error_answer
from service_load import SMOKE, main, parse_args
from service_outage import (
    Observation,
    OutagePlan,
    OutageSetup,
    Timeline,
    outage_summary,
    own_node,
    phase_of,
    run_outage,
)
from service_throughput import agreement

pytestmark = pytest.mark.load


def answer(ids, scores, header="reranked 5", status=200):
    return ServiceAnswer(tuple(ids), tuple(scores), {}, status=status, header=header)


def test_error_bodies_are_checked_against_the_engines_shape():
    body = {"error": {"type": "upstream_unavailable_exception", "reason": "x"}, "status": 503}
    assert engine_error_shape(body, 503)
    assert not engine_error_shape(body, 502)  # status in the body must be the HTTP one
    assert not engine_error_shape({"error": "plain text", "status": 503}, 503)
    assert not engine_error_shape("<html>Bad Gateway</html>", 502)
    made = error_answer(503, body, 0.0)
    assert (made.outcome, made.engine_shape, made.reranked) == (
        "503 upstream_unavailable_exception",
        True,
        False,
    )
    assert error_answer(502, None, 0.0).outcome == "502 unreadable body"
    assert answer(["a"], [1.0], "passthrough; rerank timeout").outcome == (
        "200 passthrough; rerank timeout"
    )


def test_agreement_counts_differences_ties_apart_and_skips_passthroughs():
    reference = {"q": Response(("a", "b", "c"), (3.0, 2.0, 2.0), {})}
    responses = [
        ("q", answer(["a", "b", "c"], [3.0, 2.0, 2.0])),  # equal
        ("q", answer(["a", "c", "b"], [3.0, 2.0, 2.0])),  # a tie in another order
        ("q", answer(["b", "a", "c"], [3.0, 2.0, 2.0])),  # same scores, so ties too
        ("q", answer(["c", "a", "b"], [4.0, 3.0, 2.0])),  # a real difference
        ("q", answer(["x"], [1.0], "passthrough; rerank timeout")),  # not compared
        ("q", Response(("a", "b", "c"), (3.0, 2.0, 2.0), {})),  # in process
    ]
    found = agreement(responses, reference)
    assert (found.checked, found.differing, found.ties_only) == (5, 3, 2)
    assert found.examples[0].startswith("q: got ['a', 'c', 'b']")


def outage_run(observations, killed=10.0, relaunched=15.0, back=30.0):
    timeline = Timeline(None, OutagePlan(client_timeout_s=5.0), 0.0)  # type: ignore[arg-type]
    timeline.killed_at, timeline.relaunched_at, timeline.back_at = killed, relaunched, back
    return outage_summary(observations, timeline)


def seen(start, end, outcome, status=200, shape=True):
    reranked = outcome == "200 reranked"
    return Observation(start, end, (end - start) * 1000, outcome, status, shape, reranked)


def test_outage_phases_recovery_and_targets():
    observations = [
        seen(1.0, 1.2, "200 reranked"),
        seen(9.9, 10.1, "502 upstream_error_exception", 502),  # in flight at the kill
        seen(12.0, 12.1, "503 upstream_unavailable_exception", 503),
        seen(14.9, 15.5, "200 reranked"),  # sent before the relaunch: not the recovery
        seen(31.0, 31.4, "200 reranked"),  # the recovery
        seen(32.0, 32.2, "200 reranked"),
    ]
    result = outage_run(observations)
    assert result["first_reranked_again_at_s"] == 31.4
    assert result["recovery_s_after_node_back"] == 1.4
    assert [phase_of(o, 10.0, 31.4) for o in observations] == [
        "before kill",
        "outage",
        "outage",
        "outage",
        "after recovery",
        "after recovery",
    ]
    assert result["phases"]["outage"]["by_outcome"] == {
        "502 upstream_error_exception": 1,
        "503 upstream_unavailable_exception": 1,
        "200 reranked": 1,
    }
    assert all(result["targets"].values()), result["targets"]
    assert result["error_answers_by_status"] == {"502": 1, "503": 1}


def test_outage_targets_missed_are_stated():
    observations = [
        seen(1.0, 1.2, "200 reranked"),
        seen(11.0, 17.0, "no answer: ConnectionTimeout", None),  # past the 5 s client timeout
        seen(12.0, 12.1, "500 weird", 500),
        seen(13.0, 13.1, "503 unreadable body", 503, shape=False),
    ]
    targets = outage_run(observations)["targets"]
    assert targets == {
        "never hangs": False,
        "errors are 502/503 in the engine's shape": False,
        "recovers by itself": False,
        "only reranked answers after recovery": False,
    }


def test_smoke_sizes_are_defaults_that_flags_override():
    args = parse_args(["--smoke", "--clients", "3"])
    assert (args.clients, args.seconds, args.max_docs, args.max_queries) == (3, 5.0, 40, 4)
    assert args.kill_at == SMOKE["kill_at"]
    full = parse_args([])
    assert (full.clients, full.seconds, full.rerank_k) == (8, 60.0, 100)
    with pytest.raises(ValueError, match="kill_at_s=0: expected seconds > 0"):
        OutagePlan(kill_at_s=0)


@pytest.mark.slow
@pytest.mark.es
def test_service_against_in_process_at_smoke_size(es_cluster, index_names, tmp_path):
    index = index_names(es_cluster)
    # A generous rerank budget: a busy test machine must not turn reranks into fail-opens.
    result = main(
        [
            *("--smoke", "--no-outage", "--corpus", "stdlib", "--index", index),
            *("--es-url", es_cluster.url, "--out", str(tmp_path), "--rerank-timeout-ms", "20000"),
        ]
    )
    figures = result["throughput"]
    service = figures["paths"]["service"]["summary"]
    local = figures["paths"]["in process"]["summary"]
    assert service["errors"] == 0 and local["errors"] == 0, (service, local)
    assert service["requests"] > 0 and local["requests"] > 0
    assert all(h.startswith("reranked") for h in figures["service_answers_by_header"])
    for name, agree in figures["agreement"].items():
        assert agree["checked"] > 0 and agree["differing"] == agree["ties_only"], (name, agree)
    assert figures["ratio"] > 0
    assert {p.name for p in tmp_path.iterdir()} >= {
        "service_load.json",
        "service_load.md",
        "service_load.png",
    }
    report = (tmp_path / "service_load.md").read_text()
    assert "| service |" in report and "| in process |" in report and "zero errors: met" in report
    assert json.loads((tmp_path / "service_load.json").read_text())["meta"]["clients"] == 2


@pytest.mark.slow
@pytest.mark.es
@pytest.mark.faults
def test_upstream_killed_and_relaunched_mid_run(splade_encoder, colbert_encoder, tmp_path):
    documents, queries = corpus_and_queries("stdlib", 20, 4)
    plan = OutagePlan(kill_at_s=3.0, down_s=2.0, after_s=3.0, step_s=2.0, max_s=150.0)
    with own_node("elasticsearch", tmp_path) as node:
        setup = OutageSetup(
            "elasticsearch",
            documents,
            queries,
            splade_encoder,
            colbert_encoder,
            clients=2,
            k=10,
            options=ServiceOptions(rerank_timeout_ms=20000),
            work=tmp_path,
        )
        result = run_outage(setup, plan, node.result())
    assert all(result["targets"].values()), result
    phases = result["phases"]
    assert phases["before kill"]["by_outcome"].get("200 reranked", 0) > 0, phases
    assert result["error_answers"] > 0 and set(result["error_answers_by_status"]) <= {
        "502",
        "503",
    }
    assert result["error_answers_in_engine_shape"] == result["error_answers"]
    assert result["no_answer"] == 0 and result["max_latency_ms"] < plan.client_timeout_s * 1000
    assert result["recovery_s_after_relaunch"] is not None
