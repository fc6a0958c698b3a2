"""The service's parts that need neither a node nor a model: the model pool's bound and
abandoned work, answers the service writes (``max_score``, characters JSON allows but UTF-8
does not), headers it drops, targets no URL can hold."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from splade_es.service.config import ServiceConfig
from splade_es.service.embeddings import EmbeddingSource
from splade_es.service.forwarding import json_response
from splade_es.service.queries import plan_search
from splade_es.service.rerank_stage import ModelPool, PoolBusy
from splade_es.service.responses import first_stage_answer, max_score, reranked_answer
from splade_es.service.upstream import BadTarget, Upstream, forwarded_headers

SOURCE = EmbeddingSource("colbert", "source")
MATCH = {"match": {"text": "heart attack"}}


def test_timed_out_calls_leave_no_work_in_the_pool():
    ran: list[int] = []
    release = threading.Event()

    def slow(i: int):
        def call() -> int:
            ran.append(i)
            release.wait(5)
            return i

        return call

    async def burst() -> list[BaseException | int]:
        pool = ModelPool(workers=1, queued=10)
        calls = [pool.run(slow(i), 0.05) for i in range(6)]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        release.set()
        for _ in range(100):  # the running call ends on its thread
            if pool.pending == 0:
                break
            await asyncio.sleep(0.02)
        assert pool.pending == 0
        assert await pool.run(lambda: 7, 5.0) == 7  # the pool takes work again
        pool.close()
        return answers

    answers = asyncio.run(burst())
    assert all(isinstance(answer, TimeoutError) for answer in answers)
    assert ran == [0]  # the queued calls were dropped, not run after their callers left


def test_a_full_pool_refuses_work():
    async def main() -> None:
        pool = ModelPool(workers=1, queued=1)
        first = asyncio.ensure_future(pool.run(lambda: time.sleep(0.2), 5.0))
        await asyncio.sleep(0)
        with pytest.raises(PoolBusy, match="1 model calls queued"):
            await pool.run(lambda: None, 5.0)
        await first
        assert pool.pending == 0
        pool.close()

    asyncio.run(main())


def test_max_score_is_the_best_of_the_hits_ranked():
    plan = plan_search({"query": MATCH, "size": 2}, [], 3, SOURCE)
    fused = {"hits": {"max_score": 12.5, "hits": [{"_id": "a", "_score": 0.03}]}}
    assert first_stage_answer(fused, plan)["hits"]["max_score"] == 0.03  # not the app's 12.5
    empty = {"hits": {"max_score": 12.5, "hits": []}}
    assert first_stage_answer(empty, plan)["hits"]["max_score"] is None
    answer = {"hits": {"max_score": 9.0, "hits": [{"_id": "a", "_score": 9.0}, {"_id": "b"}]}}
    head = [{"_id": "a", "_score": 0.4, "_first_stage_score": 9.0, "_colbert_score": 0.4}]
    assert reranked_answer(answer, head, plan, 0.0)["hits"]["max_score"] == 0.4
    past = plan_search({"query": MATCH, "from": 5}, [], 3, SOURCE)  # as the engines: the best
    assert first_stage_answer(fused, past)["hits"]["max_score"] == 0.03  # overall, any page
    assert max_score([{"_score": 1}, {"_score": None}, {}]) == 1.0


def test_answers_with_lone_surrogates_are_written_as_escapes():
    body = {"hits": {"hits": [{"_source": {"text": "heart \udc80 attack", "t": "日本"}}]}}
    response = json_response(body, 200, [(b"content-type", b"application/json")], {})
    assert json.loads(response.body) == body
    assert b"\\udc80" in response.body


def test_headers_the_app_names_in_connection_are_not_sent_on():
    headers = [
        (b"connection", b"close, X-Trace-Hop"),
        (b"x-trace-hop", b"1"),
        (b"x-opaque-id", b"app-1"),
        (b"te", b"trailers"),
    ]
    assert forwarded_headers(headers, body_unchanged=True) == [(b"x-opaque-id", b"app-1")]


@pytest.mark.parametrize("raw_path", [b"/docs/_doc/a#b", b"/docs/_doc/a\x7fb"])
def test_a_target_no_url_can_hold_is_a_bad_target(raw_path):
    upstream = Upstream(ServiceConfig("http://127.0.0.1:9200"))
    with pytest.raises(BadTarget, match=r"percent-encode them \(a '#' as %23\)"):
        upstream.url(raw_path, b"")
    assert upstream.url(b"/docs/_doc/a%23b", b"x=1").raw_path == b"/docs/_doc/a%23b?x=1"
