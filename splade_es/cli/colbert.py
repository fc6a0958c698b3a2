"""ColBERT options shared by index, search and eval, and the objects they build."""

from __future__ import annotations

from dataclasses import dataclass

import click

from colbert_rerank.codecs import CodecName
from colbert_rerank.encoder import DEFAULT_MODEL, ColbertConfig, ColbertEncoder
from colbert_rerank.fusion import Fusion, FusionMethod
from colbert_rerank.storage import FORMS, StoredForm
from splade_es.cli.options import POSITIVE_INT, UNIT_FLOAT, option_group
from splade_es.indexing.colbert_fields import ColbertStorage


def _bits(_context: click.Context, _param: click.Parameter, value: str) -> int:
    return int(value)


# Parameter names are ColbertStorage's fields, so the group builds it directly; its defaults
# are the options' defaults.
DEFAULT_STORAGE = ColbertStorage()
STORAGE_OPTIONS = (
    click.option(
        "--codec",
        type=click.Choice(["residual", "int8", "float16"]),
        default=DEFAULT_STORAGE.codec,
        show_default=True,
        help="How ColBERT token embeddings are stored.",
    ),
    click.option(
        "--bits",
        type=click.Choice(["1", "2"]),
        default=str(DEFAULT_STORAGE.bits),
        show_default=True,
        callback=_bits,
    ),
    click.option(
        "--codebook-sample",
        "sample_documents",
        type=POSITIVE_INT,
        default=256,
        show_default=True,
        help="Documents whose embeddings fit the residual codebook (and projection).",
    ),
    click.option(
        "--colbert-dim",
        "dim",
        type=POSITIVE_INT,
        default=DEFAULT_STORAGE.dim,
        help="Store embeddings reduced to this many dims (projection fitted on the sample).",
    ),
    click.option(
        "--colbert-pool-factor",
        "pool_factor",
        type=POSITIVE_INT,
        default=DEFAULT_STORAGE.pool_factor,
        show_default=True,
        help="Merge similar document tokens: store ceil(tokens / N) per document (2 about "
        "halves the storage; 1 stores every token).",
    ),
    click.option(
        "--colbert-form",
        "form",
        type=click.Choice(list(FORMS)),
        default=DEFAULT_STORAGE.form,
        show_default=True,
        help="Where the engine keeps the embeddings: doc_values or stored (out of _source: "
        "searches return them without parsing the document) or source (kept by _reindex).",
    ),
)

storage_options = option_group("storage", ColbertStorage, *STORAGE_OPTIONS)
"""How token embeddings are stored: codec, bits, codebook sample, reduced dims, token
pooling; the command gets ``storage``, a :class:`ColbertStorage`."""


@dataclass(frozen=True)
class ColbertOptions:
    """The index command's ColBERT options.

    Attributes:
        enabled: also store ColBERT token embeddings (``--colbert``).
        model: the late-interaction model.
        max_stored_tokens: cap on the token embeddings kept per document.
        storage: how they are stored.
    """

    enabled: bool
    model: str
    max_stored_tokens: int | None
    storage: ColbertStorage

    @classmethod
    def from_options(
        cls,
        colbert: bool,
        colbert_model: str,
        max_stored_tokens: int | None,
        codec: CodecName,
        bits: int,
        sample_documents: int,
        dim: int | None,
        pool_factor: int = DEFAULT_STORAGE.pool_factor,
        form: StoredForm = DEFAULT_STORAGE.form,
    ) -> ColbertOptions:
        storage = ColbertStorage(
            codec=codec,
            bits=bits,
            sample_documents=sample_documents,
            dim=dim,
            pool_factor=pool_factor,
            form=form,
        )
        return cls(colbert, colbert_model, max_stored_tokens, storage)

    def encoder_config(self, device: str | None) -> ColbertConfig:
        return ColbertConfig(
            model=self.model, device=device, max_stored_tokens=self.max_stored_tokens
        )


colbert_options = option_group(
    "colbert",
    ColbertOptions.from_options,
    click.option(
        "--colbert",
        is_flag=True,
        help="Also store ColBERT token embeddings (for --rerank), in the same pass.",
    ),
    click.option(
        "--colbert-model",
        default=DEFAULT_MODEL,
        show_default=True,
        help="Late-interaction model: HF id, local dir (Stanford ColBERT, PyLate) or alias.",
    ),
    click.option(
        "--max-stored-tokens",
        type=POSITIVE_INT,
        help="Keep at most this many token embeddings per document (counted).",
    ),
    *STORAGE_OPTIONS,
)
"""--colbert, the model, the token cap and the storage options of the index command; the
command gets ``colbert``, a :class:`ColbertOptions`."""


@dataclass(frozen=True)
class RerankOptions:
    """How search and explain rerank with ColBERT.

    Attributes:
        colbert_model: the reranking model; ``None`` for the one the index records.
        rerank_k: first-stage hits rescored by MaxSim.
        fusion: how the MaxSim score combines with the first-stage score.
    """

    colbert_model: str | None
    rerank_k: int
    fusion: Fusion

    @classmethod
    def from_options(
        cls,
        colbert_model: str | None,
        rerank_k: int,
        rerank_fusion: FusionMethod,
        rerank_weight: float,
    ) -> RerankOptions:
        return cls(colbert_model, rerank_k, Fusion(method=rerank_fusion, weight=rerank_weight))

    def encoder_config(self, recorded: str | None, device: str | None) -> ColbertConfig:
        """``--colbert-model``, else ``recorded`` (the index's), else the shipped default."""
        return ColbertConfig(model=self.colbert_model or recorded or DEFAULT_MODEL, device=device)


_index_colbert_model = click.option(
    "--colbert-model",
    help="ColBERT model (default: the one recorded in the index).",
)

rerank_options = option_group(
    "rerank",
    RerankOptions.from_options,
    _index_colbert_model,
    click.option(
        "--rerank-k",
        type=POSITIVE_INT,
        default=100,
        show_default=True,
        help="First-stage hits rescored by MaxSim.",
    ),
    click.option(
        "--rerank-fusion",
        type=click.Choice(["replace", "weighted", "rrf"]),
        default="replace",
        show_default=True,
    ),
    click.option(
        "--rerank-weight",
        type=UNIT_FLOAT,
        default=0.5,
        show_default=True,
        help="MaxSim share for --rerank-fusion weighted.",
    ),
)
"""--colbert-model, --rerank-k and the fusion of search and explain; the command gets
``rerank``, a :class:`RerankOptions` (search's ``--rerank`` flag is the command's own)."""


def build_colbert(config: ColbertConfig) -> ColbertEncoder:
    click.echo(f"Loading ColBERT model {config.model} ...", err=True)
    return ColbertEncoder(config)


colbert_model_option = option_group(
    "rerank",
    lambda colbert_model: RerankOptions(colbert_model, 1, Fusion()),
    _index_colbert_model,
)
"""explain's --colbert-model alone (it aligns one document: no rerank depth or fusion)."""
