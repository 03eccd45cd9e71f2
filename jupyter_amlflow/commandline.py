"""Values in ``%amlflow`` command lines we write for a person to type or paste back (inert ones).

IPython expands a magic line before the magic sees it (``InteractiveShell.var_expand`` with
``IPython.utils.text.DollarFormatter``): ``{expression}`` is *evaluated*, ``$name`` and
``$name.attr`` are replaced by variables, ``{{``/``}}`` become ``{``/``}``. Then ``%amlflow``
splits the line as a POSIX shell would (``shlex``). The README relies on that expansion
(``%amlflow connect {workspace}``), so ``%amlflow`` keeps it; but a name that comes from a server
(an experiment another user created, a workspace, a tenant id in an error) must come back exactly
as itself, with nothing evaluated, when a person accepts a completion or pastes a suggested
command. ``magic_arg`` writes such a value so that both steps together give it back:

* ``{`` and ``}`` are doubled, as ``str.format`` escapes them (in any shell quoting);
* a ``$`` is never directly followed by a character IPython would take as a variable name
  (``[A-Za-z0-9_.$]``): that character gets a shell backslash, outside quotes, which ``shlex``
  removes. (IPython's own ``$$`` escape depends on how many ``'`` follow on the line, so it is
  not used);
* the rest is quoted for ``shlex``: nothing for plain names, single quotes where that suffices,
  backslashes otherwise.

This module imports nothing heavy; ``tests/test_inert_commands.py`` checks it through IPython.
"""

from __future__ import annotations

import re

__all__ = ["magic_arg", "magic_option"]

# Characters that mean nothing to shlex or to IPython's expansion.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./()-]+")
# What IPython's DollarFormatter takes as (the start of) a variable after "$": r"\$(\$?[\w\.]+)".
_AFTER_DOLLAR = re.compile(r"[\w.$]")


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def magic_arg(value: str, *, quotes: bool = True) -> str:
    """``value`` as one argument of a ``%amlflow`` line: comes back exactly, evaluates nothing.

    Args:
        value: The value.
        quotes: Single-quote a value with spaces where that suffices (``'my exp'``). Completions
            pass False: a completion must start with what was typed, so ``my\\ exp``, as bash
            completes.

    Raises:
        ValueError: ``value`` holds a line break or another control character, which no magic
            line can carry.
    """
    if any(not ch.isprintable() and ch != " " for ch in value):
        raise ValueError("a value with control characters cannot be typed in a magic line")
    if value and _PLAIN.fullmatch(value):
        return value
    if not value:
        return "''"
    if quotes and "'" not in value and "$" not in value:
        return "'" + _braces(value) + "'"
    out = []
    previous = ""
    for ch in value:
        if ch in "{}":
            out.append(ch * 2)
        elif previous == "$" and _AFTER_DOLLAR.fullmatch(ch):
            out.append("\\" + ch)
        elif ch == "$" or _PLAIN.fullmatch(ch):
            out.append(ch)
        else:
            out.append("\\" + ch)
        previous = ch
    return "".join(out)


def magic_option(name: str, value: str) -> str:
    """``--name VALUE`` for a ``%amlflow`` line (``--name=VALUE`` when VALUE starts with ``-``).

    argparse would take a separate ``-x`` for an option of its own.
    """
    arg = magic_arg(value)
    return f"{name}={arg}" if value.startswith("-") else f"{name} {arg}"
