"""Corpus readers (JSONL, CSV, BEIR), queries and judgements, and the stdlib demo corpus."""
