"""The models the service runs, loaded once at start: ColBERT always, SPLADE for a
``splade``/``fusion`` first stage. The only module of the service that loads models."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from colbert_rerank.encoder import DEFAULT_MODEL, ColbertConfig, ColbertEncoder
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.service.config import ServiceConfig

__all__ = ["ServiceModels", "load_models", "warm_up"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceModels:
    """The loaded models.

    Attributes:
        colbert: reranks; indices whose embeddings another model wrote pass through.
        splade: encodes the query of a ``splade``/``fusion`` first stage (``None`` for
            ``app``).
    """

    colbert: ColbertEncoder
    splade: SpladeEncoder | None = None

    def describe(self) -> dict[str, str | None]:
        """Model names, for the health answer."""
        return {
            "colbert": self.colbert.config.model,
            "splade": self.splade.config.model if self.splade is not None else None,
        }


def load_models(config: ServiceConfig) -> ServiceModels:
    """Load the models ``config`` needs (this takes seconds; do it before serving).

    Example:
        >>> models = load_models(ServiceConfig(upstream="http://127.0.0.1:9200"))  # doctest: +SKIP
    """
    colbert_model = config.colbert_model or DEFAULT_MODEL
    logger.info("loading ColBERT model %s", colbert_model)
    colbert = ColbertEncoder(ColbertConfig(model=colbert_model, device=config.device))
    splade = None
    if config.first_stage != "app":
        model = config.splade_model or EncoderConfig().model
        splade_config = EncoderConfig(model=model, device=config.device)
        logger.info("loading SPLADE model %s", splade_config.model)
        splade = SpladeEncoder(splade_config)
    warm_up(ServiceModels(colbert, splade))
    return ServiceModels(colbert, splade)


def warm_up(models: ServiceModels) -> None:
    """Hash the weights (checked against each index's ``_meta``) and encode one query with
    each model, so the first request does not pay for it within its rerank budget."""
    models.colbert.fingerprint()
    models.colbert.encode_queries(["warm up"])
    if models.splade is not None:
        models.splade.fingerprint()
        models.splade.encode_queries(["warm up"])
