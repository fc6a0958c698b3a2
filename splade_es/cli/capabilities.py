"""``splade-es capabilities``: probe what a cluster supports."""

from __future__ import annotations

from typing import Any

import click

from splade_es.cli.options import cluster_options, open_cluster
from splade_es.cluster.capabilities import markdown_table, probe


@click.command()
@cluster_options
def capabilities(**params: Any) -> None:
    """Probe the cluster (rank_features, sparse_vector, binary, dense_vector) as a table."""
    cluster = open_cluster(params)
    try:
        click.echo(markdown_table([probe(cluster)]), nl=False)
    finally:
        cluster.close()
