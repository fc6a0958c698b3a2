"""Index templates (JSON), installed as ``splade_es.mappings``.

- ``index.json``: the default SPLADE index (settings and the ``title``/``text`` fields).
  Replicas are left to ``--replicas``, then the template, then the cluster (its default and
  its own index templates), except on a cluster of one data node, where the index gets none
  (a replica could never be assigned there: the index would stay yellow). The
  package adds the SPLADE field, the stored-embeddings field and ``_meta``; a user template
  (``splade_es.cluster.mapping.load_template``) replaces this file.
- ``codebook.json``: the ColBERT codebook companion index ``<index>-colbert-codebook``
  (one document; ``auto_expand_replicas: 0-1``: one replica where a second node can hold it).
- ``probe.json``: the throw-away indices of the capability probe (one field each, added by
  the check that uses it).

Read them with ``splade_es.cluster.mapping.packaged_template(name)``.
"""
