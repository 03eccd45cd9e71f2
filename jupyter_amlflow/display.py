"""Display objects: everything shown to a person has a text form and an escaped HTML form.

No IPython import here: Jupyter calls ``_repr_html_``, the terminal and logs use ``repr``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """A URL with a label; text form ``label <url>``, HTML form an anchor opening a new tab."""

    label: str
    url: str

    def text(self) -> str:
        """Plain-text form."""
        return self.url if self.label == self.url else f"{self.label} <{self.url}>"

    def html(self) -> str:
        """HTML form (escaped)."""
        return (
            f'<a href="{html.escape(self.url, quote=True)}" target="_blank" rel="noopener noreferrer">'
            f"{html.escape(self.label)}</a>"
        )


Cell = str | Link | None


def _text(value: Cell) -> str:
    if value is None:
        return "—"
    return value.text() if isinstance(value, Link) else value


def _html(value: Cell) -> str:
    if value is None:
        return "—"
    return value.html() if isinstance(value, Link) else html.escape(value)


@dataclass(frozen=True)
class KeyValues:
    """A titled list of ``(label, value)`` rows, e.g. ``%amlflow status``."""

    title: str
    rows: Sequence[tuple[str, Cell]]
    note: str = ""

    def __repr__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        lines = [self.title]
        lines += [f"  {k.ljust(width)}  {_text(v)}" for k, v in self.rows]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f'<tr><th style="text-align:left;padding-right:1em">{html.escape(k)}</th>'
            f'<td style="text-align:left">{_html(v)}</td></tr>'
            for k, v in self.rows
        )
        note = f"<div>{html.escape(self.note)}</div>" if self.note else ""
        return f'<div class="amlflow"><b>{html.escape(self.title)}</b><table>{body}</table>{note}</div>'


@dataclass(frozen=True)
class Table:
    """A titled table with a header row, e.g. ``%amlflow list workspaces``."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    note: str = ""

    def __repr__(self) -> str:
        texts = [[_text(c) for c in row] for row in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in texts]) for i, h in enumerate(self.columns)]
        lines = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.columns, widths, strict=True)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in texts]
        if not self.rows:
            lines.append("(none)")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="text-align:left">{html.escape(c)}</th>' for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f'<td style="text-align:left">{_html(c)}</td>' for c in row) + "</tr>" for row in self.rows
        )
        empty = "<div>(none)</div>" if not self.rows else ""
        note = f"<div>{html.escape(self.note)}</div>" if self.note else ""
        return (
            f'<div class="amlflow"><b>{html.escape(self.title)}</b>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{empty}{note}</div>"
        )


@dataclass(frozen=True)
class Message:
    """A one-paragraph message (with an optional link)."""

    text: str
    link: Link | None = None

    def __repr__(self) -> str:
        return self.text + (f" {self.link.text()}" if self.link else "")

    def _repr_html_(self) -> str:
        link = f" {self.link.html()}" if self.link else ""
        return f'<div class="amlflow">{html.escape(self.text)}{link}</div>'
