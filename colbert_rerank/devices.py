"""Where models run: the device name checked once, the same way for every encoder of both
packages (``splade_es`` uses it too), and resolved to a torch device only when a model loads.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["check_device", "pick_device"]

_DEVICE = re.compile(r"(cpu|mps|cuda|xpu|npu|hpu|xla|meta)(:\d+)?")
_HOW = "pass cpu, cuda, cuda:N (N = the GPU's index) or mps, or leave it out to use the best one"


def check_device(device: str | None) -> str | None:
    """``device`` (a name, or a ``torch.device``, as its name) if it names a device, else a
    ValueError. Loads nothing (no torch).

    Raises:
        ValueError: names the bad value and the accepted forms.

    Example:
        >>> check_device("cuda:1")
        'cuda:1'
        >>> check_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device='gpu' is not a device: pass cpu, cuda, cuda:N (N = the GPU's index) \
or mps, or leave it out to use the best one available (--device left out, device=None in Python).
    """
    if device is None:
        return None
    if type(device).__name__ == "device" and hasattr(device, "type"):  # a torch.device
        device = str(device)
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ValueError(
            f"device={device!r} is not a device: {_HOW} available (--device left out, "
            "device=None in Python)."
        )
    return device


def pick_device(device: str | None) -> torch.device:
    """The torch device to run on: ``None`` picks CUDA, else MPS, else CPU.

    Raises:
        ValueError: ``device`` is not a device name, or names one this machine lacks (the
            message says what it has).
    """
    import torch

    check_device(device)
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (chosen.index or 0) >= count:
            has = f"{count} CUDA device(s)" if count else "no CUDA device"
            build = "" if torch.version.cuda else " (this torch is a CPU-only build)"
            raise ValueError(
                f"device={device!r} but CUDA is not available here: this machine has {has}"
                f"{build}. Pass --device cpu, or leave --device out to use the best device "
                "available (device=None in Python)."
            )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} but MPS is not available here: pass --device cpu, or leave "
            "--device out to use the best device available (device=None in Python)."
        )
    return chosen
