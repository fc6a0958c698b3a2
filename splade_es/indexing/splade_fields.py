"""The SPLADE field of each document: what the bulk pipeline stores, and the index it needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from splade_es.cluster.admin import ensure_index, resolve_mapping_type
from splade_es.cluster.connection import Cluster
from splade_es.cluster.mapping import IndexLayout, encoder_meta, index_body
from splade_es.data.corpus import Document
from splade_es.encoding.encoder import SpladeEncoder
from splade_es.indexing.bulk import FieldBatch


class SpladeFields:
    """Encodes documents into ``{field: {feature key: weight}}``.

    Counters reported: ``terms`` (stored terms, summed), ``truncated`` (documents longer
    than the max length), ``pruned_terms`` (terms removed by the pruning policy),
    ``empty_vectors`` (documents with no positive term; still indexed, BM25-searchable).
    """

    def __init__(self, encoder: SpladeEncoder, field: str = "splade") -> None:
        self.encoder = encoder
        self.field = field

    def encode(self, documents: Sequence[Document]) -> FieldBatch:
        """The SPLADE field of each document, with per-document counts for the report."""
        batch = self.encoder.encode_documents([d.encoded_text for d in documents])
        vocabulary = self.encoder.vocabulary
        fields = [{self.field: vocabulary.to_features(v)} for v in batch.vectors]
        return FieldBatch(
            fields,
            {
                "terms": sum(len(v) for v in batch.vectors),
                "truncated": sum(batch.truncated),
                "pruned_terms": sum(batch.pruned),
                "empty_vectors": sum(1 for v in batch.vectors if len(v) == 0),
            },
        )


def prepare_index(
    cluster: Cluster,
    encoder: SpladeEncoder,
    index: str,
    mapping_type: Literal["auto", "rank_features", "sparse_vector"] = "auto",
    shards: int | None = None,
    replicas: int | None = None,
    extra_properties: Mapping[str, Any] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    *,
    template: Mapping[str, Any] | None = None,
    source_excludes: tuple[str, ...] = (),
    knn: bool = False,
) -> tuple[IndexLayout, Literal["created", "exists"]]:
    """Create the SPLADE index for ``encoder`` (or accept an identical existing one).

    ``extra_properties``/``extra_meta`` add fields and ``_meta`` blocks (stored token
    embeddings use them; ``source_excludes`` leaves fields out of ``_source``; ``knn`` sets
    OpenSearch's ``index.knn`` for kNN vector fields).
    ``template`` is a user index template (``load_template``) whose settings, analyzers and
    fields are kept; ``None`` uses the packaged ``mappings/index.json``. An existing index is
    accepted on its ``_meta`` alone: a changed template does not alter or reject it.

    Raises:
        ValueError: the template clashes with a field or ``_meta`` block the package adds.
        IndexMismatchError: the index exists but was built with another model or layout.

    Example:
        >>> layout, state = prepare_index(cluster, encoder, "docs")  # doctest: +SKIP
        >>> from splade_es.cluster.mapping import load_template
        >>> mine = load_template(Path("my-index.json"))  # doctest: +SKIP
        >>> layout, state = prepare_index(cluster, encoder, "v2", template=mine)  # doctest: +SKIP
    """
    layout = IndexLayout(
        mapping_type=resolve_mapping_type(cluster, mapping_type),
        shards=shards,
        replicas=replicas,
        extra_properties=dict(extra_properties or {}),
        source_excludes=source_excludes,
        knn=knn,
    )
    body = index_body(layout, encoder_meta(encoder, layout), extra_meta, template)
    state = ensure_index(cluster, index, body)
    return layout, state
