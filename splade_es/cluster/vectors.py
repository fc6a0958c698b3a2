"""Vector fields for approximate kNN: their mapping and their query, per engine (pure builders).

Elasticsearch maps them as ``dense_vector`` (HNSW, ``index_options`` for quantisation) and
searches them with the ``knn`` query; OpenSearch needs its k-NN plugin: ``knn_vector`` with the
Lucene HNSW engine (the only one the plugin runs without its native libraries), the index
setting ``index.knn``, and its own ``knn`` query. Both are free features (no licence).
Similarity is the inner product everywhere: MUVERA encodings approximate MaxSim by their
inner product, and normalised sentence embeddings make it the cosine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from colbert_rerank.checks import check_positive_ints

__all__ = [
    "MAX_DIMS",
    "QUANTIZATIONS",
    "Quantization",
    "VectorField",
    "knn_query",
    "needs_knn_setting",
    "vector_property",
]

Quantization = Literal["none", "int8", "int4", "bbq"]
QUANTIZATIONS: tuple[Quantization, ...] = ("none", "int8", "int4", "bbq")

# The largest vector each engine indexes: Elasticsearch's dense_vector (4096), OpenSearch's
# Lucene k-NN engine (16000).
MAX_DIMS: Mapping[str, int] = {"elasticsearch": 4096, "opensearch": 16000}

_ES_TYPES = {"none": "hnsw", "int8": "int8_hnsw", "int4": "int4_hnsw", "bbq": "bbq_hnsw"}


@dataclass(frozen=True)
class VectorField:
    """One kNN vector field.

    Attributes:
        name: the field.
        dims: vector dimension.
        quantization: how the HNSW graph stores vectors: ``int8`` (scalar quantisation, the
            default: a quarter of the float bytes, recall close to float), ``none`` (float),
            and on Elasticsearch only ``int4`` and ``bbq`` (binary, 1 bit per dimension).
        m / ef_construction: HNSW graph degree and build-time beam.
    """

    name: str
    dims: int
    quantization: Quantization = "int8"
    m: int = 16
    ef_construction: int = 100

    def __post_init__(self) -> None:
        if not self.name or "." in self.name:
            raise ValueError(f"Vector field {self.name!r}: expected a non-empty name without dots.")
        check_positive_ints(self, "dims", "m", "ef_construction")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(
                f"quantization={self.quantization!r}: expected one of {', '.join(QUANTIZATIONS)}."
            )

    def check_engine(self, engine: str) -> None:
        """Raise if ``engine`` cannot index this field (dimension limit, quantisation)."""
        limit = MAX_DIMS.get(engine)
        if limit is None:
            raise ValueError(f"Unknown engine {engine!r}: expected one of {', '.join(MAX_DIMS)}.")
        if self.dims > limit:
            raise ValueError(
                f"Vector field {self.name!r} has {self.dims} dimensions; {engine} indexes at "
                f"most {limit}: choose a smaller encoding (e.g. a MUVERA final_dim <= {limit})."
            )
        if engine == "opensearch" and self.quantization not in ("none", "int8"):
            raise ValueError(
                f"quantization={self.quantization!r} is Elasticsearch-only; OpenSearch's Lucene "
                "k-NN engine offers 'int8' (its scalar quantiser) or 'none'."
            )


def needs_knn_setting(engine: str) -> bool:
    """Whether an index with kNN vector fields needs ``index.knn: true`` (OpenSearch's k-NN
    plugin builds its graphs only then; Elasticsearch has no such setting)."""
    return engine == "opensearch"


def vector_property(field: VectorField, engine: str) -> dict[str, Any]:
    """The field's mapping on ``engine`` (OpenSearch also needs ``IndexLayout.knn``).

    Example:
        >>> vector_property(VectorField("dense", 384), "elasticsearch")["index_options"]
        {'type': 'int8_hnsw', 'm': 16, 'ef_construction': 100}
    """
    field.check_engine(engine)
    graph = {"m": field.m, "ef_construction": field.ef_construction}
    if engine == "elasticsearch":
        return {
            "type": "dense_vector",
            "dims": field.dims,
            "index": True,
            "similarity": "max_inner_product",
            "index_options": {"type": _ES_TYPES[field.quantization], **graph},
        }
    parameters: dict[str, Any] = dict(graph)
    if field.quantization == "int8":
        parameters["encoder"] = {"name": "sq"}
    return {
        "type": "knn_vector",
        "dimension": field.dims,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "innerproduct",
            "parameters": parameters,
        },
    }


def knn_query(
    field: str,
    vector: np.ndarray,
    k: int,
    candidates: int,
    engine: str,
    filters: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``knn`` query clause for the ``k`` nearest documents to ``vector``.

    Args:
        field: the vector field.
        vector: ``[dims]`` query vector.
        k: neighbours wanted (per shard).
        candidates: the HNSW search beam (``num_candidates`` / ``ef_search``), >= ``k``.
        engine: ``elasticsearch`` or ``opensearch``.
        filters: filter clauses applied during the graph search (not after it).
    """
    values = [float(x) for x in np.asarray(vector, dtype=np.float32).ravel()]
    beam = max(candidates, k)
    if engine == "elasticsearch":
        body: dict[str, Any] = {
            "field": field,
            "query_vector": values,
            "k": k,
            "num_candidates": beam,
        }
        if filters:
            body["filter"] = list(filters)
        return {"knn": body}
    clause: dict[str, Any] = {
        "vector": values,
        "k": k,
        "method_parameters": {"ef_search": beam},
    }
    if filters:
        clause["filter"] = {"bool": {"filter": list(filters)}}
    return {"knn": {field: clause}}
