"""Process-level settings for training: device, threads, precision, the CPU allocator.

CPU (measured on a 2-core AMD EPYC, torch 2.13):
  * one intra-op thread per worker process and as many worker processes as cores: two 1-thread
    processes give ≈ 1.9–2.0× one thread; one 2-thread process is much worse whenever anything
    else uses the CPU;
  * `OMP_WAIT_POLICY=PASSIVE` must be in the environment before `import torch` (OpenMP reads
    it once): otherwise idle OpenMP threads spin and steal the other workers' cores.
    `flops_fit.backends.torch_backend` sets it on import; a worker process must import that
    module (or set the variable itself) before anything imports torch;
  * glibc returns freed multi-MB blocks (the logits, the attention buffers) to the OS and
    page-faults them back on every step: ~800 faults and ~12% of a small model's step time.
    `tune_cpu_allocator` keeps them in the heap (mallopt; Linux/glibc only, best effort);
  * `torch.compile` and bf16 autocast do not pay on these CPUs: keep them for CUDA.
CUDA: bf16 autocast, fused AdamW, TF32 matmuls for anything left in fp32.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from contextlib import nullcontext

import torch

log = logging.getLogger(__name__)

_allocator_tuned = False
_wait_policy_warned = False  # once per process: a sweep runs many runs in each process


def tune_cpu_allocator() -> bool:
    """Stop glibc from unmapping/trimming freed blocks up to 32 MB (once per process)."""
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return _allocator_tuned
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = (
            libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
            and libc.mallopt(m_trim_threshold, 1 << 30)
            and libc.mallopt(m_top_pad, 64 * 1024 * 1024)
        )
        _allocator_tuned = bool(ok)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        _allocator_tuned = False
    return _allocator_tuned


class DeviceUnavailableError(RuntimeError):
    """params:torch_backend.device names a device this machine does not have."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"params:torch_backend.device is {name!r} but no CUDA device is available"
        )
    return device


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]


def configure(device: torch.device, num_threads: int) -> None:
    """Per-process settings for a run on `device`."""
    global _wait_policy_warned
    if device.type == "cpu":
        if (os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE"
                and not _wait_policy_warned):
            _wait_policy_warned = True
            log.warning(
                "OMP_WAIT_POLICY is not PASSIVE: idle OpenMP threads may spin; set it "
                "before torch is imported (see flops_fit.nn.runtime)"
            )
        if torch.get_num_threads() != num_threads:
            torch.set_num_threads(num_threads)
        tune_cpu_allocator()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if device.index is not None:
            torch.cuda.set_device(device)


def autocast(device: torch.device, dtype: torch.dtype):
    """bf16 autocast on the run's device, or nothing for fp32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
