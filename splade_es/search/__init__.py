"""Searching: the Searcher, query bodies, hybrid fusion, and search_then_rerank (the one entry
point for search followed by ColBERT reranking)."""
