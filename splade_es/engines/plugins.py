"""Engine plugins fetched from Maven Central: OpenSearch's k-NN plugin."""

from __future__ import annotations

from splade_es.engines.artifacts import MavenArtifact

# The k-NN plugin (``knn_vector`` fields, the ``knn`` query) as Maven Central publishes it:
# Java only, without the faiss/nmslib native libraries, so the Lucene HNSW engine is the one
# it runs (this package maps its vector fields to it). The repository served no .sha1, .sha512
# or .md5 for it (asked through mvn on 2026-12-02), so its SHA-512 is pinned, from two
# downloads into separate local repositories that agreed. Published for 2.19.6.0, not for
# 2.19.4.0 (the secured node's version), which therefore runs without it.
_PINNED_KNN_SHA512 = {
    "2.19.6": "ea8679cd108937b1d62c1466391db2d1f34ffe003844c4b17040284dd824ecee3d3df37708"
    "4a1b570278abcf4dc74560b3ea93a14839a660e7dd2524bdf59efc",
}


def knn_plugin(version: str) -> tuple[MavenArtifact, ...]:
    """The k-NN plugin for OpenSearch ``version`` where its checksum is pinned, else none."""
    pinned = _PINNED_KNN_SHA512.get(version)
    if pinned is None:
        return ()
    return (
        MavenArtifact(
            "org.opensearch.plugin",
            "opensearch-knn",
            f"{version}.0",
            packaging="zip",
            checksum="sha512",
            pinned=pinned,
        ),
    )
