"""Index templates (JSON), installed as ``splade_es.mappings``.

- ``index.json``: the default SPLADE index (settings and the ``title``/``text`` fields). The
  package adds the SPLADE field, the stored-embeddings field and ``_meta``; a user template
  (``splade_es.cluster.mapping.load_template``) replaces this file.
- ``codebook.json``: the ColBERT codebook companion index ``<index>-colbert-codebook``
  (one document).
- ``probe.json``: the throw-away indices of the capability probe (one field each, added by
  the check that uses it).

Read them with ``splade_es.cluster.mapping.packaged_template(name)``.
"""
