"""The SPLADE field of each document, for the bulk pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from splade_es.bulk import FieldBatch
from splade_es.corpus import Document
from splade_es.encoder import SpladeEncoder


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
