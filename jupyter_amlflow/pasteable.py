"""Commands we print for a person to paste back into a cell, and the rule that keeps them inert.

IPython expands a magic line before the magic sees it: ``{expr}`` is evaluated (any expression)
and ``$name`` is replaced by a variable, with quoting rules of its own (``$`` inside single quotes
is left alone unless a ``{...}`` field splits the text). No escaping survives both that and
``%amlflow``'s shell-style split for every input, so a value goes into a suggested command only
when it has none of the characters either of them treats specially; otherwise another command,
one that shows the value, is suggested instead.
"""

from __future__ import annotations

import re

# Whitespace and quotes split or group words for shlex; a backslash escapes; "$", "{" and "}" are
# IPython's expansions; control characters would hide what is pasted. Azure's own names (workspace,
# resource group, subscription id) never contain any of these.
_SPECIAL = re.compile(r"[\s'\"\\${}\x00-\x1f\x7f]")


def is_inert(word: str) -> bool:
    """Whether ``word`` reaches ``%amlflow`` unchanged when pasted into a magic line."""
    return bool(word) and _SPECIAL.search(word) is None


def connect_command(arm_id: str) -> str:
    """``%amlflow connect ARM_ID``; when the id is not inert, the command that lists workspaces instead."""
    return f"%amlflow connect {arm_id}" if is_inert(arm_id) else "%amlflow list workspaces"
