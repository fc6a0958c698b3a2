"""Index templates (JSON), installed as ``splade_es.mappings``.

- ``index.json``: the default SPLADE index (settings and the ``title``/``text`` fields). The
  package adds the SPLADE field, the stored-embeddings field and ``_meta``; a user template
  (``splade_es.cluster.mapping.load_template``) replaces this file.
- ``codebook.json``: the ColBERT codebook companion index ``<index>-colbert-codebook``
  (one document).

Read them with ``splade_es.cluster.mapping.packaged_template(name)``.
"""
