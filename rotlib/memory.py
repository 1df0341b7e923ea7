"""Keep freed memory in the process: the one CPU speed-up of issue 15 that changes nothing computed.

Why it helps (measured, see README "Speed"): glibc's ``malloc`` serves large
blocks with ``mmap`` and returns them to the operating system on ``free``. A
training step allocates and frees the same large activation and gradient
tensors every step (tens of MB each for the paper NIN), so every step the
kernel maps fresh pages and zero-fills them on first touch: about 700,000
page faults per paper-NIN step on the 2-core build machine, a quarter of the
step's time. Raising glibc's mmap and trim thresholds keeps that memory in
the heap, where the next step reuses it: the same numbers, computed without
the faults. The cost is that the process keeps its peak memory until it
exits (it would be needed again at the next step anyway).

This is process-wide, so nothing in rotlib does it behind your back: the
notebooks call :func:`keep_freed_memory` in their first cell, as do the
command line and the benchmarks. Setting ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` in the environment before Python starts does the
same; a preloaded tcmalloc measured the same as well.
"""
from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1     # glibc malloc.h
M_MMAP_THRESHOLD = -3
LIMIT = 2**31 - 1         # mallopt takes an int: blocks up to 2 GiB come from the heap and stay there


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse. True when it took effect.

    Returns False, changing nothing, where the C library is not glibc (macOS,
    Windows, musl): there the allocator's own defaults apply.
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
    return bool(mallopt(M_MMAP_THRESHOLD, LIMIT)) and bool(mallopt(M_TRIM_THRESHOLD, LIMIT))
