"""The ``splade-es`` command line."""

from __future__ import annotations

import logging
import sys

import click

from splade_es import __version__
from splade_es.cli.capabilities import capabilities
from splade_es.cli.errors import USER_ERRORS
from splade_es.cli.evaluating import eval_command
from splade_es.cli.indexing import index_command
from splade_es.cli.node import node
from splade_es.cli.quickstart import quickstart
from splade_es.cli.searching import explain, search
from splade_es.cli.serving import serve
from splade_es.cli.training import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="splade-es")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """SPLADE learned sparse retrieval in Elasticsearch/OpenSearch, with ColBERT reranking."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # The clients log every 4xx as a warning; expected ones (a probe, a missing index) are
    # reported by this package in its own words instead.
    # The node pool's retry warnings precede the one message that says what failed.
    for noisy in ("opensearch", "elastic_transport.transport", "elastic_transport.node_pool"):
        logging.getLogger(noisy).setLevel(logging.ERROR if verbose < 2 else logging.DEBUG)


cli.add_command(node)
cli.add_command(capabilities)
cli.add_command(index_command)
cli.add_command(search)
cli.add_command(explain)
cli.add_command(eval_command)
cli.add_command(quickstart)
cli.add_command(train)
cli.add_command(serve)


def main() -> None:
    """Entry point: run the CLI, turning expected failures into one clear message."""
    try:
        # Outside standalone mode click returns the code of a ctx.exit()/Exit instead.
        code = cli(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except USER_ERRORS as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)


__all__ = ["cli", "main"]
