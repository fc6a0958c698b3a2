"""``splade-es capabilities``: probe what a cluster supports."""

from __future__ import annotations

import click

from splade_es.cli.options import ClusterOptions, cluster_options, open_cluster
from splade_es.cluster.capabilities import markdown_table, probe


@click.command()
@cluster_options
def capabilities(cluster: ClusterOptions) -> None:
    """Probe the cluster (rank_features, sparse_vector, binary, dense_vector) as a table."""
    connection = open_cluster(cluster)
    try:
        click.echo(markdown_table([probe(connection)]), nl=False)
    finally:
        connection.close()
