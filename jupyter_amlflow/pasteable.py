"""Commands we print for a person to paste back into a cell, and the rules that keep them inert.

IPython expands a magic line before the magic sees it (``InteractiveShell.var_expand`` with
``IPython.utils.text.DollarFormatter``): ``{expression}`` is *evaluated*, ``$name`` and
``$name.attr`` are replaced by variables (with quoting rules of their own: ``$`` inside single
quotes is left alone unless a ``{...}`` field splits the text), ``{{``/``}}`` become ``{``/``}``.
Then ``%amlflow`` splits the line as a POSIX shell would (``shlex``). The README relies on that
expansion (``%amlflow connect {workspace}``), so ``%amlflow`` keeps it; but a name that comes from
a server (an experiment another user created, a workspace, a tenant id in an error) must come back
exactly as itself, with nothing evaluated. Two ways:

* ``is_inert`` / ``connect_command``: use a value only when it has none of the characters either
  step treats specially, and suggest another command otherwise (the sandbox's ``ready`` line);
* ``magic_arg`` / ``magic_option``: write any printable value so that both steps give it back
  (completions, the panel's commands, error hints): ``{`` and ``}`` doubled, as ``str.format``
  escapes them (in any shell quoting); a ``$`` never directly followed by a character IPython
  would take as a variable (``[A-Za-z0-9_.$]``): that character gets a shell backslash, outside
  quotes, which ``shlex`` removes (IPython's own ``$$`` escape depends on how many ``'`` follow on
  the line, so it is not used); the rest quoted for ``shlex`` (nothing for plain names, single
  quotes where that suffices, backslashes otherwise). ``tests/test_inert_commands.py`` checks it
  through IPython, property-based included.
"""

from __future__ import annotations

import re

__all__ = ["connect_command", "is_inert", "magic_arg", "magic_option"]

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
