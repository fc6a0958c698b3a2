"""Index templates (JSON), installed as ``splade_es.mappings``.

- ``index.json``: the default SPLADE index (settings and the ``title``/``text`` fields).
  ``auto_expand_replicas: 0-1`` keeps one replica where a second node can hold it and none
  on a single node (which could never assign it: the index would stay yellow); ``--replicas``
  sets a fixed count instead. The
  package adds the SPLADE field, the stored-embeddings field and ``_meta``; a user template
  (``splade_es.cluster.mapping.load_template``) replaces this file.
- ``codebook.json``: the ColBERT codebook companion index ``<index>-colbert-codebook``
  (one document).
- ``probe.json``: the throw-away indices of the capability probe (one field each, added by
  the check that uses it).

Read them with ``splade_es.cluster.mapping.packaged_template(name)``.
"""
