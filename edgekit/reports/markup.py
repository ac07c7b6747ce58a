"""HTML building blocks: escaped elements, the page shell and its stylesheet, inline figures.

Escaping is structural: :func:`el` escapes every child that is not already
:class:`Markup`, so text that came from a device (thing names, reasons, log lines)
cannot become markup. The page is self-contained: the stylesheet is inline, figures are
``data:`` URIs, and nothing needs JavaScript.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.errors import DataError


class Markup(str):
    """A string that is HTML already: :func:`el` inserts it as it is."""

    __slots__ = ()


Child = Any  # Markup, str, number, None, or an iterable of those


def esc(value: object) -> Markup:
    """``value`` as escaped text (None is the empty string)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(children: Iterable[Child]) -> Markup:
    return Markup("".join(_render(c) for c in children))


def _render(child: Child) -> str:
    if child is None:
        return ""
    if isinstance(child, Markup):
        return child
    if isinstance(child, str | int | float):
        return esc(child)
    if isinstance(child, Iterable):
        return join(child)
    return esc(child)


_VOID = frozenset({"img", "meta", "br", "hr", "link", "input"})


def el(tag: str, *children: Child, **attrs: object) -> Markup:
    """``<tag attrs>children</tag>``; ``class_`` is ``class``; None/False attributes are dropped."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{esc(value)}"')
    if tag in _VOID:
        return Markup(f"<{' '.join(parts)}>")
    return Markup(f"<{' '.join(parts)}>{join(children)}</{tag}>")


# ---------------------------------------------------------------------------- values


def number(value: Any, digits: int = 3) -> str:
    """A number as people read it: ints as they are, floats to ``digits`` significant figures."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value == 0:
            return "0"
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def percent(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return number(value)
    return f"{value * 100:.1f} %"


def seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def short_sha(value: Any) -> Markup:
    """The first 12 hex digits of a sha256 in <code>, the whole digest in its title."""
    if not value:
        return Markup("–")
    text = str(value)
    return el("code", text[:12] + ("…" if len(text) > 12 else ""), title=text, class_="nowrap")


def badge(text: str, tone: str) -> Markup:
    """A coloured label: tone is good, bad, warn or neutral."""
    return el("span", text, class_=f"badge {tone}")


_TONES = {
    "PROVEN": "good",
    "PASS": "good",
    "PASSED": "good",
    "OK": "good",
    "SUCCESS": "good",
    "SUCCEEDED": "good",
    "PROMOTED": "good",
    "RUNNING": "good",
    "COMPLETED": "good",
    "FAILED": "bad",
    "FAIL": "bad",
    "ROLLED_BACK": "bad",
    "BROKEN": "bad",
    "ERRORED": "bad",
    "UNHEALTHY": "bad",
    "TIMED_OUT": "bad",
    "CANCELED": "bad",
    "REJECTED": "bad",
    "PENDING": "warn",
    "IN_PROGRESS": "warn",
    "SKIPPED": "neutral",
    "CURRENT": "neutral",
    "NOT RUN": "neutral",
}


def tone_of(status: Any) -> str:
    return _TONES.get(str(status).upper(), "neutral")


def status_badge(status: Any) -> Markup:
    if status is None or status == "":
        return Markup("–")
    return badge(str(status), tone_of(status))


# ---------------------------------------------------------------------------- blocks


def table(
    headers: Sequence[Child],
    rows: Iterable[Sequence[Child] | Markup],
    *,
    caption: str | None = None,
    numeric: Iterable[int] = (),
    class_: str | None = None,
) -> Markup:
    """A table with a header row; ``numeric`` columns are right-aligned.

    A row given as Markup is inserted as it is (a full ``<tr>`` built by the caller).
    """
    right = set(numeric)
    head = el(
        "thead",
        el(
            "tr",
            [
                el("th", h, scope="col", class_="num" if i in right else None)
                for i, h in enumerate(headers)
            ],
        ),
    )
    body_rows = []
    for row in rows:
        if isinstance(row, Markup):
            body_rows.append(row)
            continue
        body_rows.append(
            el("tr", [el("td", c, class_="num" if i in right else None) for i, c in enumerate(row)])
        )
    return el(
        "div",
        el(
            "table",
            el("caption", caption) if caption else None,
            head,
            el("tbody", body_rows),
            class_=class_,
        ),
        class_="table-wrap",
    )


def facts(pairs: Iterable[tuple[str, Child]]) -> Markup:
    """A definition list of label/value pairs (values of None are left out)."""
    items = [(k, v) for k, v in pairs if v is not None and v != ""]
    return el("dl", [[el("dt", k), el("dd", v)] for k, v in items], class_="facts")


def banner(status: str, title: str, detail: Child = None) -> Markup:
    """The verdict at the top of the page: a coloured block with the status in large type."""
    return el(
        "section",
        el("p", status, class_="verdict"),
        el("p", title, class_="verdict-title"),
        el("div", detail, class_="verdict-detail") if detail else None,
        class_=f"banner {tone_of(status)}",
        role="status",
        aria_label=f"outcome: {status}",
    )


def section(heading: str, *children: Child, anchor: str | None = None) -> Markup:
    return el("section", el("h2", heading), *children, id=anchor)


def preformatted(text: Any) -> Markup:
    return el("pre", "" if text is None else str(text))


_KINDS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _image_bytes(path: Path) -> tuple[str, bytes]:
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"figure {path}: only {', '.join(sorted(_KINDS))} files can be embedded in a report",
            path=str(path),
        )
    try:
        return kind, path.read_bytes()
    except OSError as exc:
        raise DataError(f"figure {path}: cannot read it ({exc.strerror})", path=str(path)) from exc


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None if ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def image_data_uri(path: str | os.PathLike[str]) -> str:
    """``data:image/png;base64,...`` of a PNG (or JPEG/SVG, by suffix) file."""
    kind, data = _image_bytes(Path(path))
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


#: Width of a figure cell when two share a row at 1280 px (wider figures get the row).
HALF_WIDTH_PX = 640


def figure_grid(items: Mapping[str, str | os.PathLike[str]]) -> Markup:
    """Each figure inline (a data: URI) with its name as caption; wide ones span the row."""
    cells = []
    for name, path in items.items():
        kind, data = _image_bytes(Path(path))
        size = png_size(data) if kind == "image/png" else None
        # wider than half the page: a row of its own, so its text is not shrunk
        wide = size is not None and size[0] > HALF_WIDTH_PX
        img = el(
            "img",
            src=f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}",
            alt=f"figure {name}",
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
        cells.append(
            el(
                "figure",
                img,
                el("figcaption", name),
                class_="wide" if wide else None,
            )
        )
    return el("div", cells, class_="figures")


STYLE = """
:root { color-scheme: light; --good: #1a7f37; --bad: #c62828; --warn: #9a6700;
  --neutral: #57606a; --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 24px 64px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 32px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 20px 0 6px; }
.subtitle { color: var(--neutral); margin: 0 0 16px; }
.banner { border-radius: 8px; padding: 16px 20px; margin: 16px 0 8px; color: #fff; }
.banner.good { background: var(--good); } .banner.bad { background: var(--bad); }
.banner.warn { background: var(--warn); } .banner.neutral { background: var(--neutral); }
.banner p { margin: 0; }
.verdict { font-size: 2rem; font-weight: 700; letter-spacing: .04em; }
.verdict-title { font-size: 1.05rem; }
.verdict-detail { margin-top: 8px; }
.verdict-detail ul { margin: 4px 0 0; padding-left: 20px; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 6px 10px; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
td p { margin: 0 0 4px; }
td > ul.numbers { margin: 0; }
th { background: var(--soft); font-weight: 600; }
tbody tr:nth-child(even) > td { background: #fbfcfd; }
th[scope="row"], .nowrap { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed > td { background: #fff5f5 !important; }
tr.reason > td { background: #fff5f5 !important; border-top: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: .85em;
  font-weight: 600; white-space: nowrap; color: #fff; }
.badge.good { background: var(--good); } .badge.bad { background: var(--bad); }
.badge.warn { background: var(--warn); } .badge.neutral { background: var(--neutral); }
ul.plain { list-style: none; margin: 0; padding: 0; }
ul.numbers { margin: 0; padding-left: 18px; }
.mismatch { color: var(--bad); font-weight: 600; }
.muted { color: var(--neutral); }
code { font: .9em ui-monospace, "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
pre { font: .85em/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: var(--soft);
  border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 4px 0;
  white-space: pre-wrap; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 16px;
  margin: 8px 0; }
dl.facts dt { font-weight: 600; color: var(--neutral); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.figures { display: grid; gap: 16px;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 540px), 1fr)); }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px;
  background: #fff; }
figure.wide { grid-column: 1 / -1; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { text-align: center; color: var(--neutral); font-size: .9em; margin-top: 4px; }
details > summary { cursor: pointer; color: var(--neutral); }
a { color: #0969da; }
footer { margin-top: 40px; color: var(--neutral); font-size: .85em; }
@media print { .banner { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


def page(title: str, *body: Child, subtitle: Child = None, footer: Child = None) -> str:
    """A whole HTML document: inline stylesheet, no scripts, no external resources."""
    return (
        "<!doctype html>\n"
        + el(
            "html",
            el(
                "head",
                el("meta", charset="utf-8"),
                el("meta", name="viewport", content="width=device-width, initial-scale=1"),
                el("title", title),
                el("style", Markup(STYLE)),
            ),
            el(
                "body",
                el(
                    "main",
                    el("h1", title),
                    el("p", subtitle, class_="subtitle") if subtitle else None,
                    *body,
                    el("footer", footer) if footer else None,
                ),
            ),
            lang="en",
        )
        + "\n"
    )
