"""Charts as inline SVG: what the monitoring dashboard and the run report draw with. No script, no
plotting library, nothing fetched: a page works offline and a browser renders it at once."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 560, 200, 36
REF, CUR, BAD, OK, GRID = "#7a869a", "#2f6fdf", "#d64545", "#2e9e5b", "#e3e6eb"
HALO = 'paint-order="stroke" stroke="#fff" stroke-width="3"'  # text readable over the lines it sits on

# legends set their colour as an inline style: the `svg text` rule here would beat a fill attribute
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(580px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 14px}
.alert{background:#fdecec;border-color:#f3b7b7}.healthy{background:#e9f7ef;border-color:#b5e2c7}
table{border-collapse:collapse;width:100%}td,th{padding:3px 8px;border-bottom:1px solid #eceef2;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.drift{color:#d64545;font-weight:600}
.muted{color:#6b7383}svg text{font:11px system-ui,sans-serif;fill:#4a5263}
"""


def fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def utc_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def svg(body: str, label: str, height: int = HEIGHT) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'style="max-width:{WIDTH * 1.6:.0f}px;overflow:visible" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def axes(low: float, high: float, height: int = HEIGHT) -> str:
    lines = []
    for i in range(5):
        y = height - PAD + (PAD * 2 - height) * i / 4
        value = low + (high - low) * i / 4
        lines.append(f'<line x1="{PAD}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        lines.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    return "".join(lines)


def x_ticks(count: int, at: Any, name: str) -> str:
    """At most 6 numbered ticks (1-based: epoch 1, window 1) on a nice step under the plot; the first
    says what is counted."""
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10**9) if (count - 1) // s < 6)
    labels = []
    for i in range(0, count, step):
        text = f"{name} {i + 1}" if i == 0 and name else str(i + 1)
        anchor = "start" if i == 0 else "middle"
        labels.append(f'<text x="{at(i):.1f}" y="{HEIGHT - PAD + 13}" text-anchor="{anchor}">{escape(text)}</text>')
    return "".join(labels)


def line_chart(
    series: dict[str, tuple[list[float | None], str]], label: str, marks: list[int] = (), x_name: str = ""
) -> str:
    """Lines over the windows (None leaves a gap); `marks` are windows where the model version changed;
    `x_name` names what the numbered x ticks count (epoch, trial, window)."""
    values = [v for points, _ in series.values() for v in points if v is not None]
    if not values:
        return svg(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>', label)
    low, high = min(values), max(values)
    low, high = (low - 0.5, high + 0.5) if high == low else (low, high)
    count = max(len(points) for points, _ in series.values())
    step = (WIDTH - PAD - 16) / max(count - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{PAD + 8 + i * step:.1f},{HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2 * PAD):.1f}"

    parts = [axes(low, high), x_ticks(count, lambda i: PAD + 8 + i * step, x_name)]
    for i in marks:
        x = PAD + 8 + i * step
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD / 2}" y2="{HEIGHT - PAD}" stroke="#9b59b6" ')
        parts.append('stroke-dasharray="4 3"><title>new model version</title></line>')
    for n, (name, (points, color)) in enumerate(series.items()):
        runs, run = [], []
        for i, v in enumerate(points):
            if v is None:
                runs, run = [*runs, run] if run else runs, []
            else:
                run.append(xy(i, v))
        runs = [*runs, run] if run else runs
        for r in runs:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(r)}"/>')
            parts += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="{color}"/>' for p in r]
        parts.append(f'<text x="{PAD + 8 + n * 150}" y="{HEIGHT - 8}" style="fill:{color}">■ {escape(name)}</text>')
    return svg("".join(parts), label)


def bars(
    pairs: list[tuple[str, float, float]],
    label: str,
    colors: tuple[str, str] = (REF, CUR),
    legend: tuple[str, str] | None = ("reference", "current"),
) -> str:
    """Pairs of bars (reference, current) per label; with `legend` None, one bar per label (the first value)."""
    if not pairs:
        return svg(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>', label)
    high = max(max(a, b) for _, a, b in pairs) or 1.0
    slot = (WIDTH - PAD - 8) / len(pairs)
    width = max(slot * 0.4, 1)
    parts = [axes(0, high)]
    for i, (name, a, b) in enumerate(pairs):
        for j, (value, color) in enumerate(((a, colors[0]), (b, colors[1]))[: 2 if legend else 1]):
            h = value / high * (HEIGHT - 2 * PAD)
            x = PAD + 4 + i * slot + j * width
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{width:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(name)}: {value:.3f}</title></rect>"
            )
        if len(pairs) <= 12:
            text = escape(name[:10])
            parts.append(f'<text x="{PAD + 4 + i * slot + width:.1f}" y="{HEIGHT - PAD + 14}" ')
            parts.append(f'text-anchor="middle">{text}</text>')
    if legend:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 6}" style="fill:{colors[0]}">■ {escape(legend[0])}</text>')
        parts.append(f'<text x="{PAD + 90}" y="{HEIGHT - 6}" style="fill:{colors[1]}">■ {escape(legend[1])}</text>')
    return svg("".join(parts), label)


def xy_chart(
    series: dict[str, tuple[list[float], list[float], str]],
    label: str,
    *,
    diagonal: bool = False,
    dots: bool = False,
    bounds: tuple[float, float, float, float] | None = None,
) -> str:
    """Lines (or dots) of (x, y) points; `diagonal` draws y = x (a random ROC, a perfect calibration)."""
    xs = [x for x_values, _, _ in series.values() for x in x_values]
    ys = [y for _, y_values, _ in series.values() for y in y_values]
    if not xs:
        return svg(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>', label)
    x0, x1, y0, y1 = bounds or (min(xs), max(xs), min(ys), max(ys))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def at(x: float, y: float) -> tuple[float, float]:
        return PAD + 8 + (x - x0) / (x1 - x0) * (WIDTH - PAD - 24), HEIGHT - PAD - (y - y0) / (y1 - y0) * (
            HEIGHT - 2 * PAD
        )

    parts = [axes(y0, y1)]
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        px, _ = at(x, y0)
        parts.append(f'<text x="{px:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{x:.3g}</text>')
    if diagonal:
        (ax, ay), (bx, by) = at(x0, y0), at(x1, y1)
        parts.append(
            f'<line x1="{ax:.1f}" y1="{ay:.1f}" x2="{bx:.1f}" y2="{by:.1f}" stroke="{REF}" stroke-dasharray="4 3"/>'
        )
    for n, (name, (x_values, y_values, color)) in enumerate(series.items()):
        points = [at(x, y) for x, y in zip(x_values, y_values, strict=True)]
        if dots:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}" fill-opacity="0.6"/>' for x, y in points]
        else:
            joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{joined}"/>')
        step = min(170, (WIDTH - PAD) // len(series))  # ten classes' keys still fit in one row
        key = escape(name[: step // 7])
        parts.append(f'<text x="{PAD + 8 + n * step}" y="{HEIGHT - 4}" style="fill:{color}">■ {key}')
        parts.append(f"<title>{escape(name)}</title></text>")
    return svg("".join(parts), label)


def shade(share: float) -> str:
    """A colour from worst (0: red) through amber to best (1: green), for values along one scale."""
    stops = ((214, 69, 69), (230, 159, 0), (46, 158, 91))
    share = min(max(share, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(share), len(stops) - 2)
    t = share - i
    r, g, b = (round(a + (c - a) * t) for a, c in zip(stops[i], stops[i + 1], strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def parallel_coordinates(axes: list[dict[str, Any]], lines: list[dict[str, Any]], label: str) -> str:
    """One polyline per line across vertical axes. An axis is {"name", "kind": linear | log | choice,
    "low", "high"} (numbers) or {"name", "kind": "choice", "choices"} (placed by position); a line is
    {"values" (one per axis), "share" (0 worst .. 1 best: its colour), "title", "best" (drawn bold)}."""
    height, top = 240, 30
    if not axes or not lines:
        return svg(f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">no data</text>', label, height)
    span = (WIDTH - 2 * PAD - 20) / max(len(axes) - 1, 1)
    xs = [PAD + 10 + i * span for i in range(len(axes))] if len(axes) > 1 else [WIDTH / 2]
    bottom = height - PAD

    def y_of(axis: dict[str, Any], value: Any) -> float | None:
        position = _position(axis, value)
        return None if position is None else bottom - position * (bottom - top)

    parts = []
    for x, axis in zip(xs, axes, strict=True):
        name = escape(str(axis["name"]))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{REF}"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle">{name.split(".")[-1][:18]}')
        parts.append(f"<title>{name}</title></text>")
        for value in _ticks(axis):
            y = y_of(axis, value)
            text = escape(str(value)[:10]) if isinstance(value, str) else f"{value:.3g}"
            parts.append(f'<text x="{x + 3:.1f}" y="{y + 4:.1f}" font-size="9" {HALO}>{text}</text>')
    for line in sorted(lines, key=lambda item: (item.get("best", False), item["share"])):
        points = [(x, y_of(a, v)) for x, a, v in zip(xs, axes, line["values"], strict=True)]
        joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in points if y is not None)
        width = 3.5 if line.get("best") else 1.5
        parts.append(
            f'<polyline fill="none" stroke="{shade(line["share"])}" stroke-width="{width}" stroke-opacity="0.75" '
            f'points="{joined}"><title>{escape(line.get("title", ""))}</title></polyline>'
        )
    parts.append(f'<text x="{PAD}" y="{height - 6}">colour: worst (red) to best (green); bold: the best</text>')
    return svg("".join(parts), label, height)


def _position(axis: dict[str, Any], value: Any) -> float | None:
    """Where a value sits along its axis, 0 (bottom) to 1 (top); None when it has no place."""
    if axis["kind"] == "choice":
        choices = [str(c) for c in axis["choices"]]
        if str(value) not in choices:
            return None
        return 0.5 if len(choices) == 1 else choices.index(str(value)) / (len(choices) - 1)
    try:
        value, low, high = float(value), float(axis["low"]), float(axis["high"])
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    if axis["kind"] == "log" and low > 0 and value > 0:
        value, low, high = math.log(value), math.log(low), math.log(high)
    return 0.5 if high == low else min(max((value - low) / (high - low), 0.0), 1.0)


def _ticks(axis: dict[str, Any]) -> list[Any]:
    """The labels along an axis: every choice (at most 8), or the ends and middle of a range."""
    if axis["kind"] == "choice":
        choices = list(axis["choices"])
        return choices if len(choices) <= 8 else choices[:: math.ceil(len(choices) / 8)]
    low, high = float(axis["low"]), float(axis["high"])
    middle = (low * high) ** 0.5 if axis["kind"] == "log" and low > 0 else (low + high) / 2
    return [low, middle, high] if high != low else [low]
