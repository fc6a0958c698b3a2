"""Query-time transformer forward passes on ONNX Runtime (CPU), checked against torch.

A query is a dozen tokens: on CPU, torch spends most of such a forward pass on per-operator
overhead, which ONNX Runtime's fused graph does not pay (all-MiniLM-L6-v2, 19 tokens, 2 cores:
7.2 ms in torch, 3.0 ms here). The model is exported once per weights hash into a cache folder
(written to a temporary name, then renamed, so concurrent processes never read half a file)
and every load is checked: the caller compares its outputs with the torch path's on probe
texts and refuses the session when they differ by more than :data:`TOLERANCE`.

Optional: needs the ``fast`` extra (``onnxruntime`` and ``onnx``); :func:`available` says
whether it is installed.
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["TOLERANCE", "HiddenStates", "OnnxForward", "available", "cache_folder"]

logger = logging.getLogger(__name__)

# Largest absolute difference allowed between the ONNX and torch outputs of a probe text
# (float32 accumulation order differs; measured 3.5e-6 on all-MiniLM-L6-v2).
TOLERANCE = 1e-4
OPSET = 17
_EXPORT_LOCK = threading.Lock()


def available() -> bool:
    """Whether ONNX Runtime and the ONNX exporter's dependency are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_folder() -> Path:
    """Where exported models live: ``$COLBERT_RERANK_CACHE`` or ``~/.cache/colbert_rerank``."""
    explicit = os.environ.get("COLBERT_RERANK_CACHE")
    if explicit:
        return Path(explicit) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "colbert_rerank" / "onnx"


class HiddenStates(torch.nn.Module):
    """``(input_ids, attention_mask) -> last_hidden_state`` of a Hugging Face encoder."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.output_axes = {0: "batch", 1: "tokens"}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        return hidden


def _export(module: torch.nn.Module, output_axes: dict[int, str], path: Path) -> None:
    """Export ``module``'s forward pass to ``path`` (atomically, warnings silenced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.ones((1, 4), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes it records
            torch.onnx.export(
                module.eval(),
                (ids, torch.ones_like(ids)),
                temporary,
                input_names=["input_ids", "attention_mask"],
                output_names=["output"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "output": output_axes},
                opset_version=OPSET,
                **_tracing_exporter(),
            )
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _tracing_exporter() -> dict[str, Any]:
    """Ask for the TorchScript-tracing exporter where ``torch.onnx.export`` offers a choice
    (torch >= 2.5 has ``dynamo``); older versions only have that one."""
    parameters = inspect.signature(torch.onnx.export).parameters
    return {"dynamo": False} if "dynamo" in parameters else {}


class OnnxForward:
    """The exported forward pass of a module, run by ONNX Runtime on CPU.

    Args:
        module: ``(input_ids, attention_mask) -> tensor`` (e.g. :class:`HiddenStates`), with
            an ``output_axes`` attribute naming the output's variable axes.
        key: identifies the weights and the computation (e.g. a SHA-256 and a name): the
            export is cached under it.
        threads: ONNX Runtime intra-op threads (``None``: torch's current count).

    Thread-safe: ONNX Runtime sessions accept concurrent ``run`` calls.

    Raises:
        ImportError: ``onnxruntime``/``onnx`` are not installed (``pip install
            'splade-es[fast]'``).
    """

    def __init__(self, module: torch.nn.Module, key: str, threads: int | None = None) -> None:
        import onnxruntime

        path = cache_folder() / f"{key}-opset{OPSET}-torch{torch.__version__}.onnx"
        with _EXPORT_LOCK:
            if not path.exists():
                logger.info("Exporting the query encoder to ONNX (once): %s", path)
                _export(module, dict(getattr(module, "output_axes", {0: "batch"})), path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: spinning threads would take the cores from the torch
        # and numpy work that follows a query's encoding (decode, MaxSim, the other encoder).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = path
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def __call__(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """The module's float32 output for a batch."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        output: npt.NDArray[np.float32] = self.session.run(None, feeds)[0]
        return output
