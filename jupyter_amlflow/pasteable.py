"""Commands we print for a person to paste back into a cell, and the one rule that keeps them inert.

A value on a ``%amlflow`` line goes through two steps before the magic sees it. IPython expands the
line (``InteractiveShell.var_expand`` with ``IPython.utils.text.DollarFormatter``): ``{expression}``
is *evaluated*, ``$name`` and ``$name.attr`` are replaced by variables (with quoting rules of their
own: ``$`` inside single quotes is left alone unless a ``{...}`` field splits the text),
``{{``/``}}`` become ``{``/``}``. Then ``%amlflow`` splits the line as a POSIX shell would
(``shlex``). The README relies on that expansion (``%amlflow connect {workspace}``), so ``%amlflow``
keeps it; but a name that comes from a server (an experiment another user created, a workspace, a
tenant id in an error) must come back exactly as itself, with nothing evaluated.

The rule, written once (``_SPECIAL``), names every character one of those steps acts on: a space,
a quote or a backslash (``shlex``), a brace or a ``$`` (IPython's expansion), a ``?`` (IPython's
help syntax: a magic line ending in ``name?`` runs ``%pinfo name`` instead, ``name*?`` runs
``%psearch``), and the control characters no magic line can carry. Found by sending every
printable ASCII character, alone and beside others, through IPython's input transformation
(``TransformerManager``), its expansion and ``shlex``. A value without any of them is
*inert* (``is_inert``): it reaches the magic as it is. ``magic_arg`` writes any printable value so
that it comes back exactly: an inert value as it is; otherwise ``{`` and ``}`` doubled, as
``str.format`` escapes them (in any shell quoting); the character after a ``$`` that IPython would
take as a variable (``[A-Za-z0-9_.$]``) gets a shell backslash, outside quotes, which ``shlex``
removes (IPython's own ``$$`` escape depends on how many ``'`` follow on the line, so it is not
used); the other special characters quoted for ``shlex`` (single quotes where that suffices,
backslashes otherwise). Every command we print goes through these two functions: completions, the
panel's commands and error hints write values with ``magic_arg`` / ``magic_option``; the sandbox's
ready line (``connect_command``) and the install advice (``compat``) use a value only when it is
inert and suggest another command otherwise. ``tests/test_inert_commands.py`` and
``tests/test_sandbox_cli.py`` check the rule through IPython, property-based included.
"""

from __future__ import annotations

import re

__all__ = ["connect_command", "is_inert", "magic_arg", "magic_option"]

# The one rule: what IPython's input handling and expansion, or shlex's split, act on. Whitespace
# and quotes split or group words for shlex; a backslash escapes; "$", "{" and "}" are IPython's
# expansions; "?" ending a line is IPython's help; control characters would hide what is pasted.
# Azure's own names (workspace, resource group, subscription id) never contain any of these.
_SPECIAL = re.compile(r"[\s'\"\\${}?\x00-\x1f\x7f]")
# What IPython's DollarFormatter takes as (the start of) a variable after "$": r"\$(\$?[\w\.]+)".
_AFTER_DOLLAR = re.compile(r"[\w.$]")


def _check_printable(value: str) -> None:
    if any(not ch.isprintable() and ch != " " for ch in value):
        raise ValueError("a value with control characters cannot be typed in a magic line")


def is_inert(word: str) -> bool:
    """Whether ``word`` reaches ``%amlflow`` unchanged as it is (``magic_arg`` returns it unchanged)."""
    return bool(word) and word.isprintable() and _SPECIAL.search(word) is None


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
    _check_printable(value)
    if is_inert(value):
        return value
    if not value:
        return "''"
    if quotes and "'" not in value and "$" not in value:
        return "'" + _braces(value) + "'"
    # IPython strips a line's trailing whitespace, so a value that ends the line cannot end in "\\ ":
    # its trailing spaces go in single quotes (two more quotes keep the count that decides where
    # IPython expands "$" the same).
    body = value.rstrip(" ")
    out = []
    previous = ""
    for ch in body:
        if ch in "{}":
            out.append(ch * 2)
        elif previous == "$" and _AFTER_DOLLAR.fullmatch(ch):
            out.append("\\" + ch)
        elif ch == "$" or not _SPECIAL.fullmatch(ch):
            out.append(ch)
        else:
            out.append("\\" + ch)
        previous = ch
    if len(body) < len(value):
        out.append("'" + value[len(body) :] + "'")
    return "".join(out)


def magic_option(name: str, value: str) -> str:
    """``--name VALUE`` for a ``%amlflow`` line (``--name=VALUE`` when VALUE starts with ``-``).

    argparse would take a separate ``-x`` for an option of its own.
    """
    arg = magic_arg(value)
    return f"{name}={arg}" if value.startswith("-") else f"{name} {arg}"


def connect_command(arm_id: str) -> str:
    """``%amlflow connect ARM_ID``; when the id is not inert, the command that lists workspaces instead.

    A person reads this line in a terminal and pastes it as the first thing they type: an id that
    needs escaping would paste correctly but read as something else, so it is not suggested.
    """
    return f"%amlflow connect {arm_id}" if is_inert(arm_id) else "%amlflow list workspaces"
