"""Keep freed memory in the process: the CPU speed-up of issue 15 that changes nothing computed.

Why it helps (measured by ``benchmarks/step.py``, see docs/speed.md):
glibc's ``malloc`` serves large blocks with ``mmap`` and gives them back to
the operating system on ``free``. A training step allocates and frees the
same large activation and gradient tensors every step (up to hundreds of MB
each for the paper NIN at 128 images x 4 rotations), so every step the kernel
maps fresh pages and zero-fills each on first touch: about 700,000 page
faults per paper-NIN step on the 2-core build machine. Raising glibc's mmap
and trim thresholds keeps that memory in the heap, where the next step
reuses it: the same numbers, computed without the faults. The quick
profile's tensors (a few MB) mostly stay in the heap already, so it gains
little.

The cost: freed memory stays with the process (a notebook kernel keeps the
peak of whatever it ran until it restarts) instead of going back to the
system. And it is process-wide, so nothing in rotlib does it behind your
back: the command line and the benchmarks call :func:`keep_freed_memory`; the
notebooks no longer do (a class's kernels would each keep their peak), so the
speed-up measured in docs/speed.md (x1.15-1.49 a step) is not theirs: call it in
a notebook's first cell to get it for a long training there. Setting ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` before Python starts does the same; a
preloaded tcmalloc measured about the same.
"""
from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1     # glibc's malloc.h
M_MMAP_THRESHOLD = -3
LIMIT = 2**31 - 1         # mallopt takes an int: blocks up to 2 GiB come from the heap and stay there
OLD_GLIBC_LIMIT = 32 * 2**20  # glibc before 2.35 refuses an mmap threshold above 32 MiB (64-bit)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse. True when glibc accepted both settings.

    Returns False, changing nothing, where the C library is not glibc (macOS,
    Windows, musl). On a glibc older than 2.35 the mmap threshold is capped
    at 32 MiB: blocks larger than that are still mapped afresh each time.
    With another allocator preloaded (``LD_PRELOAD`` of tcmalloc or
    jemalloc), glibc's settings do not apply to it and the answer says
    nothing about that allocator.
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version          # glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_ok = mallopt(M_MMAP_THRESHOLD, LIMIT) or mallopt(M_MMAP_THRESHOLD, OLD_GLIBC_LIMIT)
    trim_ok = mallopt(M_TRIM_THRESHOLD, LIMIT)
    return bool(mmap_ok) and bool(trim_ok)
