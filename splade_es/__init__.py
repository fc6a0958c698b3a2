"""splade-es: SPLADE learned sparse retrieval in Elasticsearch and OpenSearch."""

__version__ = "0.1.0"

__all__ = ["__version__"]
