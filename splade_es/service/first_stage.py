"""The first stage of a handled ``_search``: the app's own query, SPLADE, or both fused.

``app`` sends the rewritten app request. ``splade`` sends two at once: the app's (``size``
0: it gives ``hits.total`` and the aggregations, computed by the engine over the app's
query) and a SPLADE dot-product query for the hits, which keeps every restriction of the
app's query as a filter (a query whose restrictions a filter cannot keep exactly passes
through: :func:`~splade_es.service.queries.app_filters`). ``fusion`` fuses the hits of both
client-side with RRF. The bodies are built by the pure functions below; the SPLADE query is
encoded on the model pool, and an encoding that fails, times out or finds the pool busy
passes the request through with the reason (never a 5xx). A first stage answered other
than 200 goes back to the app as it came.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from colbert_rerank.fusion import Fusion, fuse
from splade_es.search.query import splade_query, with_filters
from splade_es.service.catalog import IndexProfile, SpladeField
from splade_es.service.config import FirstStage
from splade_es.service.models import ServiceModels
from splade_es.service.queries import SearchPlan, Unhandled, app_filters
from splade_es.service.rerank_stage import ModelPool, PoolBusy
from splade_es.service.upstream import Upstream, read_json

__all__ = ["FirstStageAnswer", "FirstStageRunner", "fused_hits", "splade_body"]

logger = logging.getLogger(__name__)
RRF = Fusion(method="rrf")
# Seconds a SPLADE query encoding may take (queued and run) before the request passes through.
ENCODE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FirstStageAnswer:
    """The first stage's answer: the engine's response, hits in first-stage order.

    Attributes:
        status: the upstream's status (200 for a handled search).
        answer: the decoded body (``hits.hits`` holds ``plan.depth`` hits at most; empty
            when the status is not 200).
        headers: the upstream's answer headers (of the app's own query).
        content: the body as the upstream sent it (decompressed), for an answer other than
            200 that goes back to the app unchanged.
    """

    status: int
    answer: dict[str, Any]
    headers: httpx.Headers
    content: bytes = b""


def splade_body(
    plan_body: Mapping[str, Any], features: Mapping[str, float], splade: SpladeField
) -> dict[str, Any]:
    """The SPLADE search: the plan's body with the query replaced by the dot product over
    ``features`` (with the app's filters) and without aggregations.

    Example:
        >>> splade_body({"query": {"match": {"t": "x"}}, "size": 5, "aggs": {}},
        ...             {"x": 1.0}, SpladeField("splade", "rank_features"))["query"]
        {'bool': {'should': [{'rank_feature': {'field': 'splade.x', 'linear': {}, 'boost': 1.0}}]}}
    """
    query = splade_query(splade.field, features, splade.mapping_type)  # type: ignore[arg-type]
    body = {k: v for k, v in plan_body.items() if k not in ("aggs", "aggregations")}
    body["query"] = with_filters(query, app_filters(plan_body.get("query")))
    return body


def fused_hits(
    app: Sequence[Mapping[str, Any]], learned: Sequence[Mapping[str, Any]], depth: int
) -> list[dict[str, Any]]:
    """The top ``depth`` of both hit lists fused with RRF (``_score`` is the fused score).

    Example:
        >>> app = [{"_id": "a", "_score": 2.0}]
        >>> learned = [{"_id": "b", "_score": 5.0}, {"_id": "a", "_score": 1.0}]
        >>> [h["_id"] for h in fused_hits(app, learned, 2)]
        ['a', 'b']
    """
    hits = {str(h["_id"]): h for h in [*learned, *app]}
    scores = fuse(
        {str(h["_id"]): float(h.get("_score") or 0.0) for h in app},
        {str(h["_id"]): float(h.get("_score") or 0.0) for h in learned},
        RRF,
    )
    order = sorted(scores, key=lambda doc_id: -scores[doc_id])[:depth]
    return [{**hits[doc_id], "_score": scores[doc_id]} for doc_id in order]


class FirstStageRunner:
    """Runs the configured first stage against the upstream."""

    def __init__(
        self, mode: FirstStage, models: ServiceModels, upstream: Upstream, pool: ModelPool
    ) -> None:
        self.mode = mode
        self.models = models
        self.upstream = upstream
        self.pool = pool

    async def run(
        self,
        plan: SearchPlan,
        profile: IndexProfile,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> FirstStageAnswer:
        """The first stage of ``plan`` on the index at ``path`` (``/{index}/_search``)."""
        if self.mode == "app" or profile.splade is None:
            return await self._send(path, plan.body, plan.params, headers)
        app_filters(plan.body.get("query"))  # raises Unhandled before any model work
        features = await self._features(plan.text)
        learned_body = splade_body(plan.body, features, profile.splade)
        app_body = plan.body if self.mode == "fusion" else {**plan.body, "size": 0}
        app, learned = await asyncio.gather(
            self._send(path, app_body, plan.params, headers),
            self._send(path, learned_body, plan.params, headers),
        )
        if app.status != 200 or learned.status != 200:
            return app if app.status != 200 else learned
        hits = learned.answer.get("hits", {}).get("hits", [])
        if self.mode == "fusion":
            hits = fused_hits(app.answer.get("hits", {}).get("hits", []), hits, plan.depth)
        answer = dict(app.answer)
        answer["hits"] = {**app.answer.get("hits", {}), "hits": hits}
        return FirstStageAnswer(200, answer, app.headers)

    async def _features(self, text: str) -> dict[str, float]:
        """The SPLADE query terms of ``text``, encoded on the model pool.

        Raises:
            Unhandled: no model, the pool is busy, the encoding failed or ran past
                ``ENCODE_TIMEOUT_S`` (the request passes through with the reason).
        """
        encoder = self.models.splade
        if encoder is None:
            raise Unhandled("no SPLADE model loaded")

        def encode() -> dict[str, float]:
            vector = encoder.encode_queries([text]).vectors[0]
            return encoder.vocabulary.to_features(vector)

        try:
            features = await self.pool.run(encode, ENCODE_TIMEOUT_S)
        except TimeoutError as error:
            raise Unhandled("splade encode timeout") from error
        except PoolBusy as error:
            raise Unhandled("splade encode busy") from error
        except Exception as error:  # any model error: the app's request passes through
            logger.warning("SPLADE query encoding failed, passing through: %r", error)
            raise Unhandled(f"splade encode error: {type(error).__name__}") from error
        if not features:
            raise Unhandled("query encodes to no SPLADE terms")
        return features

    async def _send(
        self,
        path: str,
        body: Mapping[str, Any],
        params: Sequence[tuple[str, str]],
        headers: Sequence[tuple[bytes, bytes]],
    ) -> FirstStageAnswer:
        query = str(httpx.QueryParams(list(params))).encode("ascii")
        # ASCII escapes: a lone surrogate in the app's query (valid JSON) stays encodable.
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        sent = [(n, v) for n, v in headers if n.lower() not in (b"accept-encoding",)]
        response = await self.upstream.read(
            "POST", self.upstream.url(path.encode("ascii"), query), sent, content
        )
        if response.status_code != 200:
            return FirstStageAnswer(response.status_code, {}, response.headers, response.content)
        try:
            answer: Any = read_json(response.content)
        except ValueError as error:
            raise Unhandled("first-stage answer is not JSON") from error
        if not isinstance(answer, dict):
            raise Unhandled("first-stage answer is not a JSON object")
        return FirstStageAnswer(200, answer, response.headers)
