"""colbert_rerank: late-interaction (MaxSim) reranking of search hits."""

__version__ = "0.1.0"

__all__ = ["__version__"]
