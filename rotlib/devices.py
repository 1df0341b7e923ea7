"""Where a run happens and in which precision: the rules shared by training, evaluation and model identity.

:func:`pick_device` chooses the device (CUDA, another accelerator torch reports, else the CPU);
:func:`resolve_precision` the arithmetic (bf16 where native, fp16 with loss scaling on older GPUs, else fp32);
:func:`to_device` moves a batch there. Below :mod:`rotlib.train`, :mod:`rotlib.evaluate` and
:mod:`rotlib.identity`, which all import it; it imports only torch, :mod:`rotlib.checks` and
:mod:`rotlib.settings`.
"""
from __future__ import annotations

import torch

from .checks import PRECISIONS
from .settings import current


def _accelerator() -> torch.device | None:
    """The accelerator this torch can use: CUDA first, else the one ``torch.accelerator`` reports (Apple MPS,
    Intel XPU, ...), else None."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.accelerator.is_available():
        return torch.device(torch.accelerator.current_accelerator().type)
    return None


def pick_device(preference: str | None = None) -> torch.device:
    """``auto`` (default, or $ROTLIB_DEVICE): CUDA when present, else another accelerator torch reports (MPS,
    XPU), else the CPU. A named device that is not there is refused (never silently replaced by the CPU)."""
    pref = preference or current().device or "auto"
    if pref == "auto":
        return _accelerator() or torch.device("cpu")
    device = torch.device(pref)
    found = _accelerator()
    if device.type != "cpu" and (found is None or found.type != device.type):
        raise RuntimeError(f"device {pref!r} requested but this torch ({torch.__version__}) has no usable "
                           f"{device.type.upper()} device (it sees {found or 'the CPU only'}); use --device cpu or auto")
    return device


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """The precision a run on ``device`` uses: ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    ``auto``: bf16 where the hardware has it natively (CPUs with AVX-512 BF16 or AMX; CUDA GPUs of compute
    capability 8.0 and up; Intel XPUs that report it), else fp16 with loss scaling on CUDA GPUs with tensor cores
    (7.x: V100, T4), else fp32 (Apple MPS too). ``torch.cuda.is_bf16_supported()`` alone also counts emulated bf16, which is slow, so it is asked
    with ``including_emulation=False``. An explicit request the hardware cannot honour is refused, never
    silently replaced, but for bf16 on a CPU without it: that runs emulated (:func:`fit` warns when it trains so),
    so the quick profile's pinned bf16, and so its models' keys, are the same on every CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        fp16 = torch.cuda.get_device_capability(device) >= (7, 0)
    elif device.type == "cpu":
        bf16, fp16 = torch.ops.mkldnn._is_mkldnn_bf16_supported(), False
    elif device.type == "xpu":         # Intel GPUs: bf16 where the device has it
        bf16, fp16 = torch.xpu.is_bf16_supported(including_emulation=False), False
    else:                              # MPS and others: fp32 (autocast's op coverage there is partial)
        bf16 = fp16 = False
    if precision == "auto":
        return "bf16" if bf16 else "fp16" if fp16 else "fp32"
    if precision == "bf16" and not bf16 and device.type == "cpu":
        return "bf16"   # emulated; fit() says so when it trains (a key or a loaded model needs no warning)
    if precision == "bf16" and not bf16:
        raise ValueError(f"precision 'bf16' requested, but {device} has no native bf16 (it would be emulated, "
                         "slowly); use precision='auto' (fp16 with loss scaling on a GPU with tensor cores, "
                         "else fp32) or 'fp32'")
    if precision == "fp16" and not fp16:
        raise ValueError(f"precision 'fp16' requested, but {device} is not a CUDA GPU with tensor cores "
                         "(compute capability 7.0 or higher); use 'auto', 'bf16' (CPUs with bf16) or 'fp32'")
    return precision


def emulated_bf16(device: torch.device, precision: str) -> bool:
    """True when ``precision`` resolves to bf16 on a CPU without native bf16 (no AVX-512 BF16 or AMX)."""
    return (device.type == "cpu" and resolve_precision(device, precision) == "bf16"
            and not torch.ops.mkldnn._is_mkldnn_bf16_supported())


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}   # resolved precision -> dtype


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype of :func:`resolve_precision`'s choice, or None for fp32."""
    return AUTOCAST_DTYPES[resolve_precision(device, precision)]


def to_device(x: torch.Tensor, device, channels_last: bool, non_blocking: bool = False):
    """``x`` on ``device`` (channels-last for a 4-D batch when asked: faster convolutions on CPU and GPU)."""
    x = x.to(device, non_blocking=non_blocking)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
