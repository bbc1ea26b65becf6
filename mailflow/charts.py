"""Small charts as inline SVG text, for a report that is one file and needs no network.

Three shapes cover the report: horizontal bars (counts by state, topic, format, wait
times), stacked bars (each mentor's answers) and bars against a limit (hours given
against capacity). Every chart carries a <title> and an aria-label, and the report
shows the same numbers in a table next to it, so nothing depends on seeing colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

# Colours that stay apart for most kinds of colour blindness (Okabe & Ito).
BLUE, ORANGE, GREEN, VERMILION, SKY, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#BBBBBB"
FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="13"'

LABEL_WIDTH = 230
BAR_HEIGHT = 22
GAP = 8


def bars(
    items: Sequence[tuple[str, float]], *, title: str, unit: str = "", color: str = BLUE, width: int = 640
) -> str:
    """One horizontal bar per item, longest scale = the largest value, value written after it."""
    if not items:
        return _empty(title, width)
    top = max(value for _, value in items) or 1
    room = width - LABEL_WIDTH - 70
    rows = []
    for index, (label, value) in enumerate(items):
        y = index * (BAR_HEIGHT + GAP)
        length = max(1.0, room * value / top) if value else 0.0
        rows.append(
            _label(label, y)
            + _rect(LABEL_WIDTH, y, length, BAR_HEIGHT, color)
            + _text(LABEL_WIDTH + length + 6, y + 15, escape(_number(value) + unit))
        )
    return _svg(title, width, len(items) * (BAR_HEIGHT + GAP), "".join(rows))


def stacked(
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[tuple[str, str]],
    *,
    title: str,
    width: int = 640,
) -> str:
    """One bar per row, split into the series (name, colour); a legend on top."""
    if not rows:
        return _empty(title, width)
    top = max(sum(values) for _, values in rows) or 1
    room = width - LABEL_WIDTH - 50
    parts = [_legend([(name, colour, 12) for name, colour in series])]
    for index, (label, values) in enumerate(rows):
        y = 24 + index * (BAR_HEIGHT + GAP)
        x = float(LABEL_WIDTH)
        parts.append(_label(label, y))
        for value, (name, colour) in zip(values, series, strict=True):
            if value:
                length = room * value / top
                tip = f"<title>{escape(f'{label}: {_number(value)} {name}')}</title>"
                parts.append(_rect(x, y, length, BAR_HEIGHT, colour, tip))
                if length > 18:
                    middle = ' text-anchor="middle" fill="#fff"'
                    parts.append(_text(x + length / 2, y + 15, escape(_number(value)), middle))
                x += length
        parts.append(_text(x + 6, y + 15, escape(_number(sum(values)))))
    return _svg(title, width, 24 + len(rows) * (BAR_HEIGHT + GAP), "".join(parts))


def against_limit(
    rows: Sequence[tuple[str, float, float, float]], *, title: str, unit: str = "h", width: int = 640
) -> str:
    """For each row (label, used, still to come, limit): a solid bar, a light bar, a limit line."""
    if not rows:
        return _empty(title, width)
    top = max(max(used + coming, limit) for _, used, coming, limit in rows) or 1
    room = width - LABEL_WIDTH - 110
    parts = [_legend([("given", GREEN, 12), ("booked", SKY, 12), ("capacity", "#333", 3)])]
    for index, (label, used, coming, limit) in enumerate(rows):
        y = 24 + index * (BAR_HEIGHT + GAP)
        used_length, coming_length = room * used / top, room * coming / top
        limit_x = LABEL_WIDTH + room * limit / top
        parts.append(
            _label(label, y)
            + _rect(LABEL_WIDTH, y + 3, room, BAR_HEIGHT - 6, "#f2f2f2")
            + _rect(LABEL_WIDTH, y, used_length, BAR_HEIGHT, GREEN)
            + _rect(LABEL_WIDTH + used_length, y, coming_length, BAR_HEIGHT, SKY)
            + _rect(limit_x - 1.5, y - 3, 3, BAR_HEIGHT + 6, "#333")
            + _text(
                LABEL_WIDTH + room + 8, y + 15, escape(f"{_number(used + coming)} of {_number(limit)}{unit}")
            )
        )
    return _svg(title, width, 24 + len(rows) * (BAR_HEIGHT + GAP), "".join(parts))


def _legend(keys: Sequence[tuple[str, str, float]]) -> str:
    """Coloured keys in a row above the bars: (name, colour, swatch width)."""
    return "".join(
        _rect(LABEL_WIDTH + i * 120, 0, swatch, 12, colour)
        + _text(LABEL_WIDTH + i * 120 + 17, 11, escape(name))
        for i, (name, colour, swatch) in enumerate(keys)
    )


def _rect(x: float, y: float, width: float, height: float, fill: str, inner: str = "") -> str:
    box = f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{fill}"'
    return f"{box}>{inner}</rect>" if inner else f"{box}/>"


def _text(x: float, y: float, content: str, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{content}</text>'


def _label(label: str, y: float) -> str:
    return _text(LABEL_WIDTH - 8, y + 15, _short(label), ' text-anchor="end"')


def _svg(title: str, width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height + 4}" viewBox="0 0 {width} {height + 4}" {FONT} fill="#1d1d1d">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _empty(title: str, width: int) -> str:
    return _svg(
        title,
        width,
        24,
        f'<text x="0" y="16" fill="#666">Nothing to show for {escape(title.lower())}.</text>',
    )


def _short(label: str, limit: int = 32) -> str:
    text = label if len(label) <= limit else label[: limit - 1] + "…"
    return f"<tspan>{escape(text)}</tspan>" + (f"<title>{escape(label)}</title>" if text != label else "")


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"
