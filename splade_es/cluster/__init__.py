"""The cluster: the connection (every Elasticsearch/OpenSearch difference lives there), index
administration, mapping templates, names, the capability probe and companion-index I/O."""
