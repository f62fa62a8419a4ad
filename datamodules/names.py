"""File and class names as they are shown and written: a name that is not valid UTF-8 keeps its bytes as ``\\xNN``.

Linux file names are bytes; Python reads those that are not UTF-8 (a Latin-1 ``café.jpg``) with each
undecodable byte as a lone surrogate (``caf\\udce9.jpg``), which no UTF-8 file, terminal, TensorBoard
tag or figure accepts. The names stay as Python read them where files are opened; everything shown
or written goes through ``shown_name``.
"""

import os


def shown_name(name: str | os.PathLike) -> str:
    """``name`` as valid text: unchanged where it is UTF-8, its undecodable bytes as ``\\xNN`` (``caf\\xe9.jpg``)."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")
