"""Copy a model folder with its safetensors weights cast to float16 (``halve``) or back to
float32 (``restore``): how trained models travel to and from a GPU machine in half the bytes.

    python benchmarks/weights_fp16.py halve runs/trained/splade/final /tmp/pack/splade
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def convert(source: Path, target: Path, dtype: torch.dtype) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for path in target.rglob("*.safetensors"):
        tensors = load_file(str(path))
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        save_file(
            {k: v.contiguous() for k, v in cast.items()}, str(path), metadata={"format": "pt"}
        )


if __name__ == "__main__":
    verb, source, target = sys.argv[1:4]
    if verb not in ("halve", "restore"):
        raise SystemExit("usage: weights_fp16.py halve|restore SOURCE TARGET")
    convert(Path(source), Path(target), torch.float16 if verb == "halve" else torch.float32)
