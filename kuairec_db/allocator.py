"""Large arrays from the heap, not fresh mappings.

glibc's malloc serves every block above its mmap threshold (at most 32 MB when left to itself)
with a new mapping and unmaps it on free. A model's loop over the ten million training pairs of
full-scale KuaiRec makes and drops arrays of 80 MB each step, so every step faults the same
memory in again, page by page: a third of video_quality's fit. ``keep_large_blocks`` raises the
threshold once per process, so those blocks come from the heap and are reused. It changes no
result, only where memory comes from. It leaves alone an allocator that is not glibc's and a
threshold the user set (MALLOC_MMAP_THRESHOLD_).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD_BYTES = 1 << 30  # blocks up to 1 GB from the heap; larger ones are still mapped

_state: dict[str, bool] = {}


def keep_large_blocks() -> bool:
    """Raise glibc's mmap threshold (see the module docstring); True if it is raised."""
    if "raised" not in _state:
        _state["raised"] = _raise_threshold()
    return _state["raised"]


def _raise_threshold() -> bool:
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt to speak of)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES) == 1
