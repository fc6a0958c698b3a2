"""Index mapping templates (JSON), installed as ``splade_es.mappings``."""
