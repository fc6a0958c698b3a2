"""Building an index: build_index (the one entry point), the encoding queue, the bulk writer,
the id ledger, and the field encoders (SPLADE terms, ColBERT token embeddings)."""
