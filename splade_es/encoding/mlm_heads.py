"""The masked-language-model head of known architectures: hidden states -> vocabulary logits.

SPLADE's fast path (and training's checkpoint check) applies the head to non-padding tokens
only, so it needs the head as a function rather than the whole ``*ForMaskedLM`` forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["mlm_head"]


def mlm_head(model: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """hidden states -> vocabulary logits for known MLM architectures, else ``None``."""
    if hasattr(model, "cls") and hasattr(model.cls, "predictions"):  # BERT family
        head: Callable[[torch.Tensor], torch.Tensor] = model.cls
        return head
    if hasattr(model, "lm_head"):  # RoBERTa, XLM-R, CamemBERT...
        head = model.lm_head
        return head
    if hasattr(model, "vocab_projector"):  # DistilBERT

        def distilbert(hidden: torch.Tensor) -> torch.Tensor:
            x = model.activation(model.vocab_transform(hidden))
            return model.vocab_projector(model.vocab_layer_norm(x))  # type: ignore[no-any-return]

        return distilbert
    if hasattr(model, "head") and hasattr(model, "decoder"):  # ModernBERT

        def modernbert(hidden: torch.Tensor) -> torch.Tensor:
            return model.decoder(model.head(hidden))  # type: ignore[no-any-return]

        return modernbert
    return None
