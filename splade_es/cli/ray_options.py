"""``--ray [ADDRESS]`` and ``--ray-workers``: run ``splade-es index``'s encoders on Ray."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from splade_es.cli.options import POSITIVE_INT, ClusterOptions, cluster_config, option_group
from splade_es.cluster.connection import Cluster, ClusterConfig
from splade_es.indexing.distributed import RayConfig

LOCAL = "local"
"""``--ray`` given without an address: this machine's Ray (attached, or started)."""


@dataclass(frozen=True)
class RayOptions:
    """Where the encoders run: ``address`` (``None``: in this process) and how many workers."""

    address: str | None
    workers: int | None

    def check(self, checkpoint: Path | None) -> None:
        """Refuse options that would do nothing, before anything is started.

        Raises:
            click.UsageError: ``--ray-workers`` without ``--ray``, ``--checkpoint`` with it.
        """
        if self.address is None and self.workers is not None:
            raise click.UsageError("--ray-workers needs --ray (or --ray ADDRESS).")
        if self.address is not None and checkpoint is not None:
            raise click.UsageError(
                f"--checkpoint {checkpoint}: a --ray run resumes from the index itself (the "
                "documents it holds are skipped); drop --checkpoint."
            )

    def config(self, options: ClusterOptions, connection: Cluster) -> RayConfig | None:
        """The Ray config (``None`` without ``--ray``); the workers connect as this command
        does (``connection``'s URL for the local node)."""
        if self.address is None:
            return None
        target = cluster_config(options) or ClusterConfig(connection.url, connection.engine)
        address = None if self.address == LOCAL else self.address
        return RayConfig(address=address, workers=self.workers, cluster=target)


ray_options = option_group(
    "ray",
    RayOptions,
    click.option(
        "--ray",
        "address",
        is_flag=False,
        flag_value=LOCAL,
        default=None,
        metavar="[ADDRESS]",
        help="Encode and write on Ray workers (the ray extra): alone, this machine's Ray "
        "(started if none runs); or a cluster address, e.g. --ray=ray://head:10001 or "
        "--ray=auto. A re-run skips the documents the index already holds.",
    ),
    click.option(
        "--ray-workers",
        "workers",
        type=POSITIVE_INT,
        help="Ray workers, each with its own model copy (default: one per GPU, else per CPU).",
    ),
)
"""Add --ray and --ray-workers; the command gets ``ray``."""
