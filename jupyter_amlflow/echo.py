"""Echoing input in error lines: quoted, escaped, shortened.

Error text is always one line, and what a person typed (or a file or a server held) is shown in
it without letting its control or formatting characters act: a newline, an ANSI escape or a bidi
override is written as ``\\n``, ``\\x1b``, ``\\u202e``. Every module that quotes input in a message
uses ``quote_input``; paths use ``path_text``.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from types import MappingProxyType

__all__ = ["ECHO_LIMIT", "PATH_LIMIT", "path_text", "quote_input"]

ECHO_LIMIT = 60
PATH_LIMIT = 100
_NAMED_ESCAPES = MappingProxyType({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
# Categories that must never reach an error line verbatim: controls, formatting (bidi overrides,
# zero-width), surrogates, private use, unassigned, and the Unicode line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote_input(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` in single quotes, safe to put in a one-line error.

    Control and formatting characters are escaped (``\\n``, ``\\x1b``, ``\\u202e``); text longer
    than ``limit`` characters (after escaping) is cut with ``…`` and its length is given.

    Args:
        text: What the person typed (or a file contained).
        limit: Most characters of it to show.

    Returns:
        E.g. ``'my-rg'`` or ``'aaaaaaaa…' (300 characters)``.
    """
    shown: list[str] = []
    used = 0
    for char in text:
        piece = _escape_char(char)
        if used + len(piece) > limit:
            return "'" + "".join(shown) + f"…' ({len(text)} characters)"
        shown.append(piece)
        used += len(piece)
    return "'" + "".join(shown) + "'"


def path_text(path: Path | str, limit: int = PATH_LIMIT) -> str:
    """A path for an error line: escaped, and shortened from the left (the end says the most)."""
    escaped = "".join(_escape_char(c) for c in str(path))
    return escaped if len(escaped) <= limit else "…" + escaped[-(limit - 1) :]
