"""The monitoring dashboard: one self-contained HTML page (inline SVG, no script, no network), served
at `GET /dashboard` and written by `dlpipe monitor --html`."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, PAD = 560, 200, 36
REF, CUR, BAD, OK, GRID = "#7a869a", "#2f6fdf", "#d64545", "#2e9e5b", "#e3e6eb"

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


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _svg(body: str, label: str, height: int = HEIGHT) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'style="max-width:{WIDTH * 1.6:.0f}px" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _axes(low: float, high: float, height: int = HEIGHT) -> str:
    lines = []
    for i in range(5):
        y = height - PAD + (PAD * 2 - height) * i / 4
        value = low + (high - low) * i / 4
        lines.append(f'<line x1="{PAD}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        lines.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    return "".join(lines)


def line_chart(series: dict[str, tuple[list[float | None], str]], label: str, marks: list[int] = ()) -> str:
    """Lines over the windows (None leaves a gap); `marks` are windows where the model version changed."""
    values = [v for points, _ in series.values() for v in points if v is not None]
    if not values:
        return _svg(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>', label)
    low, high = min(values), max(values)
    low, high = (low - 0.5, high + 0.5) if high == low else (low, high)
    count = max(len(points) for points, _ in series.values())
    step = (WIDTH - PAD - 16) / max(count - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{PAD + 8 + i * step:.1f},{HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2 * PAD):.1f}"

    parts = [_axes(low, high)]
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
        parts.append(f'<text x="{PAD + 8 + n * 150}" y="{HEIGHT - 8}" fill="{color}">■ {escape(name)}</text>')
    return _svg("".join(parts), label)


def bars(pairs: list[tuple[str, float, float]], label: str, colors: tuple[str, str] = (REF, CUR)) -> str:
    """Pairs of bars (reference, current) per label."""
    if not pairs:
        return _svg(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>', label)
    high = max(max(a, b) for _, a, b in pairs) or 1.0
    slot = (WIDTH - PAD - 8) / len(pairs)
    width = max(slot * 0.4, 1)
    parts = [_axes(0, high)]
    for i, (name, a, b) in enumerate(pairs):
        for j, (value, color) in enumerate(((a, colors[0]), (b, colors[1]))):
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
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 6}" fill="{colors[0]}">■ reference</text>')
    parts.append(f'<text x="{PAD + 90}" y="{HEIGHT - 6}" fill="{colors[1]}">■ current</text>')
    return _svg("".join(parts), label)


def drift_scores(features: dict[str, dict[str, Any]]) -> str:
    """One row per feature: its score against its threshold (p-values drift below, distances at or above)."""
    judged = [(n, f) for n, f in features.items() if f.get("method")]
    height = 28 + 22 * max(len(judged), 1)
    parts, left, span = [], 190, WIDTH - 190 - 70
    for i, (name, f) in enumerate(judged):
        y = 18 + i * 22
        top = max(1.0, f["threshold"] * 2, f["score"])
        w, t = f["score"] / top * span, f["threshold"] / top * span
        color = BAD if f["drift"] else OK
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(name[:28])}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="15" fill="{color}">')
        parts.append(f"<title>{escape(name)}: {f['method']} {f['score']:.4f}</title></rect>")
        parts.append(f'<line x1="{left + t:.1f}" x2="{left + t:.1f}" y1="{y - 2}" y2="{y + 17}" stroke="#1d2330"/>')
        parts.append(f'<text x="{left + span + 6}" y="{y + 12}">{f["method"]} {f["score"]:.3g}</text>')
    if not judged:
        parts.append('<text x="20" y="20">no feature could be compared</text>')
    return _svg("".join(parts), "drift score per feature against its threshold", height)


def _histogram_card(name: str, data: dict[str, Any], drift: bool) -> str:
    if "edges" in data:
        edges = data["edges"]
        pairs = [
            (f"{edges[i]:.3g}–{edges[i + 1]:.3g}", a, b)
            for i, (a, b) in enumerate(zip(data["reference"], data["current"], strict=True))
        ]
    else:
        pairs = list(zip(map(str, data["levels"]), data["reference"], data["current"], strict=True))
    flag = ' <span class="drift">drift</span>' if drift else ""
    return f'<div class="card"><b>{escape(name)}</b>{flag}{bars(pairs, f"{name}: reference against current")}</div>'


def render(report: dict[str, Any]) -> str:
    """The dashboard of a monitoring report (`dlpipe.monitor.report.monitor`)."""
    windows, metric = report["windows"], report["metric"]
    title = f"{report['model']} · version {report['version']} · monitoring"
    if report["alerts"]:
        items = "".join(f"<li><b>{escape(a['kind'])}</b>: {escape(a['message'])}</li>" for a in report["alerts"])
        status = f'<div class="card alert"><b>{len(report["alerts"])} active alert(s)</b><ul>{items}</ul></div>'
    else:
        status = '<div class="card healthy"><b>Healthy</b>: no active alert</div>'
    span = f"{_time(windows[0]['start'])} – {_time(windows[-1]['end'])} UTC" if windows else "no predictions yet"
    head = (
        f"<h1>{escape(title)}</h1><p class='muted'>{report['rows']} predictions in {len(windows)} windows of "
        f"{report['window']} rows · {escape(span)} · store {escape(report['store'])} · "
        f"generated {_time(report['generated'])} UTC</p>{status}"
    )
    marks = [i for i in range(1, len(windows)) if windows[i]["versions"] != windows[i - 1]["versions"]]
    volume = line_chart({"rows per window": ([w["rows"] for w in windows], CUR)}, "rows per window", marks)
    latency = line_chart(
        {
            "p50 ms": ([w["latency_ms"]["p50"] for w in windows], CUR),
            "p95 ms": ([w["latency_ms"]["p95"] for w in windows], BAD),
        },
        "latency per window",
        marks,
    )
    live = [w["performance"].get("metrics", {}).get(metric) for w in windows]
    estimated = [w["performance"].get("estimated", {}).get(metric) for w in windows]
    test = report["test"].get(metric)
    series = {f"live {metric}": (live, CUR), f"estimated {metric}": (estimated, "#e69f00")}
    if test is not None:
        series[f"test {metric}"] = ([test] * len(windows), REF)
    performance = line_chart(series, f"{metric} per window", marks)
    coverage = line_chart({"label coverage": ([w["performance"]["coverage"] for w in windows], OK)}, "coverage")
    drift_share = line_chart({"share of features drifting": ([w["drift_share"] for w in windows], BAD)}, "drift")
    latest = windows[-1] if windows else {"histogram": {}, "prediction": {}}
    prediction = _prediction_chart(latest)
    quality_rows = "".join(
        f"<tr><td>{escape(name)}</td><td class='n'>{q['missing']:.1%}</td>"
        f"<td class='n'>{q['reference_missing']:.1%}</td>"
        f"<td class='n'>{q.get('out_of_range', q.get('unseen', 0)):.1%}</td><td class='n'>{q['violations']}</td></tr>"
        for name, q in report["quality"].items()
    )
    quality = (
        "<table><tr><th>feature</th><th>missing</th><th>missing in reference</th>"
        f"<th>out of range / unseen</th><th>violations</th></tr>{quality_rows}</table>"
    )
    histograms = "".join(
        _histogram_card(name, data, report["features"].get(name, {}).get("drift", False))
        for name, data in report.get("histograms", {}).items()
    )
    cards = [
        ("Volume", volume),
        ("Latency", latency),
        (f"Performance ({metric})", performance),
        ("Label coverage", coverage),
        ("Share of features drifting", drift_share),
        ("Predictions: reference against the latest window", prediction),
    ]
    body = "".join(f'<div class="card"><h2>{escape(t)}</h2>{c}</div>' for t, c in cards)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{head}<div class='grid'>{body}</div>"
        f"<h2>Drift per feature (latest window)</h2><div class='card'>{drift_scores(report['features'])}</div>"
        f"<h2>Data quality (latest window)</h2><div class='card'>{quality}</div>"
        f"<h2>Reference against current</h2><div class='grid'>{histograms}</div></body></html>"
    )


def _prediction_chart(latest: dict[str, Any]) -> str:
    histogram = latest.get("histogram", {})
    if "classes" in histogram:
        names = sorted(set(histogram["classes"]) | set(histogram["reference"]))
        pairs = [(n, histogram["reference"].get(n, 0.0), histogram["classes"].get(n, 0.0)) for n in names]
        return bars(pairs, "predicted classes")
    if "edges" in histogram:
        edges = histogram["edges"]
        shares = zip(histogram["reference"], histogram["current"], strict=True)
        return bars([(f"{edges[i]:.3g}", a, b) for i, (a, b) in enumerate(shares)], "predicted values")
    return bars([], "predictions")


def write_dashboard(report: dict[str, Any], path: Path) -> None:
    """Write the page beside its place, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(path)
