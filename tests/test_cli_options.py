"""How options reach the commands: stacking, typed option groups, one positive-int validator."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from colbert_rerank.encoder import DEFAULT_MODEL
from colbert_rerank.fusion import Fusion
from splade_es.cli import cli
from splade_es.cli.colbert import ColbertOptions, RerankOptions, storage_options
from splade_es.cli.models import ModelOptions, encoder_options
from splade_es.cli.options import (
    LISTEN_PORT,
    NON_NEGATIVE_INT,
    PORT,
    POSITIVE_INT,
    ClusterOptions,
    open_cluster,
    option_group,
    option_names,
    stack,
)
from splade_es.cli.training_options import DataOptions
from splade_es.indexing.colbert_fields import ColbertStorage


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = dict(_commands(cli))


@dataclass(frozen=True)
class Size:
    width: int
    height: int


def test_stack_applies_options_in_reading_order():
    @click.command()
    @stack(click.option("--first"), click.option("--second"), click.option("--third"))
    def command(first, second, third):
        click.echo(f"{first} {second} {third}")

    assert [p.name for p in command.params] == ["first", "second", "third"]
    assert CliRunner().invoke(command, ["--third", "c", "--first", "a"]).output == "a None c\n"


def test_option_names_are_read_from_the_decorators():
    options = (click.option("--max-docs", type=int), click.option("--json", "as_json"))
    assert option_names(*options) == ("max_docs", "as_json")


def test_option_group_hands_the_command_one_built_object():
    @click.command()
    @click.option("--name")
    @option_group(
        "size",
        Size,
        click.option("--width", type=POSITIVE_INT, default=2),
        click.option("--height", type=POSITIVE_INT, default=3),
    )
    @click.option("--verbose", is_flag=True)
    def draw(name: str | None, size: Size, verbose: bool) -> None:
        """Draw a box."""
        click.echo(f"{name} {size!r} {verbose}")

    assert [p.name for p in draw.params] == ["name", "width", "height", "verbose"]
    assert draw.help == "Draw a box."
    result = CliRunner().invoke(draw, ["--height", "5", "--name", "box", "--verbose"])
    assert result.exit_code == 0, result.output
    assert result.output == "box Size(width=2, height=5) True\n"


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_no_command_takes_a_bag_of_params(path):
    function = inspect.unwrap(COMMANDS[path].callback)
    kinds = {p.kind for p in inspect.signature(function).parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{' '.join(path)} takes **params"


# Integer options that are not counts or sizes: any integer is fine.
FREE_INTEGERS = {"--seed"}


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_integer_options_use_the_shared_validators(path):
    for param in COMMANDS[path].params:
        if isinstance(param.type, click.types.IntParamType) and param.opts[0] not in FREE_INTEGERS:
            assert param.type in (POSITIVE_INT, NON_NEGATIVE_INT, PORT, LISTEN_PORT), (
                path,
                param.opts,
            )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["search", "x", "--index", "i", "-k", "0"], "-k"),
        (["search", "x", "--index", "i", "--rerank-k", "0"], "--rerank-k"),
        (["search", "x", "--index", "i", "--query-max-length", "-3"], "--query-max-length"),
        (["search", "x", "--index", "i", "--rerank-weight", "2"], "--rerank-weight"),
        (["explain", "x", "--index", "i", "--id", "d", "--top", "0"], "--top"),
        (["quickstart", "--max-docs", "0"], "--max-docs"),
        (["node", "start", "--port", "70000"], "--port"),
        (["train", "negatives", "--count", "0"], "--count"),
        (["train", "splade", "--out", "o", "--epochs", "0"], "--epochs"),
        (["train", "splade", "--out", "o", "--negatives-per-example", "-1"], "--negatives-per"),
    ],
)
def test_bad_numbers_are_refused_by_click(args, option):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and option in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["search", "x", "--index", "i", "--doc-max-length", "5"],
        ["search", "x", "--index", "i", "--doc-top-k", "5"],
        ["search", "x", "--index", "i", "--batch-size", "5"],
        ["explain", "x", "--index", "i", "--id", "d", "--rerank-k", "5"],
        ["explain", "x", "--index", "i", "--id", "d", "--rerank-fusion", "rrf"],
        ["train", "negatives", "--doc-min-weight", "0.1"],
    ],
    ids=lambda args: " ".join(args[:1] + args[-2:-1]),
)
def test_options_that_would_do_nothing_are_not_offered(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "No such option" in result.output, result.output


def test_index_refuses_zero_chunk_docs_and_negative_replicas(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "x"}\n')
    for option, value in (("--chunk-docs", "0"), ("--replicas", "-1"), ("--codebook-sample", "0")):
        result = CliRunner().invoke(cli, ["index", str(corpus), "--index", "i", option, value])
        assert result.exit_code == 2 and option in result.output, result.output


def test_storage_group_builds_colbert_storage():
    @click.command()
    @storage_options
    def show(storage: ColbertStorage) -> None:
        click.echo(repr(storage))

    result = CliRunner().invoke(show, ["--codec", "int8", "--bits", "1", "--colbert-dim", "64"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr(ColbertStorage(codec="int8", bits=1, dim=64))
    pooled = CliRunner().invoke(show, ["--colbert-pool-factor", "2"])
    assert pooled.output.strip() == repr(ColbertStorage(pool_factor=2)), pooled.output
    refused = CliRunner().invoke(show, ["--colbert-pool-factor", "0"])
    assert refused.exit_code == 2 and "--colbert-pool-factor" in refused.output


def test_model_options_fall_back_to_the_recorded_model():
    @click.command()
    @encoder_options(default_model=None)
    def show(model: ModelOptions) -> None:
        click.echo(model.encoder_config("recorded-model").model)

    assert CliRunner().invoke(show, []).output == "recorded-model\n"
    assert CliRunner().invoke(show, ["--model", "mine"]).output == "mine\n"
    options = ModelOptions(None, None, "float32", 32, 256, 64, None, None, 0.0, None, 0.0)
    with pytest.raises(click.UsageError, match="Pass --model"):
        options.encoder_config(None)


def test_rerank_and_colbert_options():
    rerank = RerankOptions.from_options(None, 50, "weighted", 0.3)
    assert rerank.fusion == Fusion(method="weighted", weight=0.3)
    assert rerank.encoder_config(None, "cpu").model == DEFAULT_MODEL
    assert rerank.encoder_config("recorded", None).model == "recorded"
    colbert = ColbertOptions.from_options(True, "m", 12, "float16", 2, 8, None)
    assert colbert.storage == ColbertStorage(codec="float16", sample_documents=8)
    pooled = ColbertOptions.from_options(True, "m", None, "int8", 2, 8, None, 3)
    assert pooled.storage == ColbertStorage(codec="int8", sample_documents=8, pool_factor=3)
    assert colbert.encoder_config("cpu").max_stored_tokens == 12


def test_cluster_options_hide_secrets_and_check_the_url(tmp_path):
    options = ClusterOptions(
        "http://user:pw@127.0.0.1:1", "key", None, "pw", None, False, "elasticsearch", tmp_path
    )
    assert "key" not in repr(options) and "pw@" in repr(options)
    with pytest.raises(ValueError, match="not in the URL"):
        open_cluster(options)


def test_training_data_needs_exactly_one_source(tmp_path: Path):
    data = DataOptions(None, "train", None, None, 1, 0.1, 1000, None)
    with pytest.raises(click.UsageError, match="exactly one of --corpus"):
        data.load(42)


def test_lambda_sweep_refuses_bad_lambdas(tmp_path):
    args = ["train", "lambda-sweep", "--lambdas", "1e-3,x", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--lambdas" in result.output, result.output
