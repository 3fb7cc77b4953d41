"""Pointing the process's C-level stdout (file descriptor 1) elsewhere for a while.

Native libraries (HiGHS's banner, solver logs) write to descriptor 1 whatever
``sys.stdout`` is, and the C library may buffer what they write; both the
command line (which keeps stdout for the verdict) and the HiGHS wrapper (which
silences the banner) need descriptor 1 itself redirected, with the C buffers
flushed on both sides so nothing written meanwhile leaks out later.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator


def flush_c_stdio() -> None:
    """``fflush(NULL)``: flush every C-level stdio buffer of this process (best effort)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def descriptor_1_to(target: int) -> Iterator[None]:
    """Point descriptor 1 at descriptor ``target`` until the block ends.

    Python's and C's stdout buffers are flushed before and C's again after, so every
    write lands where it was made. Without a descriptor 1 or ``target`` (a
    detached process) the block runs with nothing redirected.
    """
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stdout.flush()
    flush_c_stdio()
    try:
        saved = os.dup(1)
        os.dup2(target, 1)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        flush_c_stdio()  # what the C library buffered goes out redirected
        os.dup2(saved, 1)
        os.close(saved)
