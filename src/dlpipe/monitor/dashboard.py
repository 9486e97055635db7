"""The monitoring dashboard: one self-contained HTML page (inline SVG, no script, no network), served
at `GET /dashboard` and written by `dlpipe monitor --html`."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from dlpipe.plots import BAD, CUR, OK, REF, STYLE, WIDTH, bars, line_chart, svg, utc_time


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
    return svg("".join(parts), "drift score per feature against its threshold", height)


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
    span = f"{utc_time(windows[0]['start'])} – {utc_time(windows[-1]['end'])} UTC" if windows else "no predictions yet"
    head = (
        f"<h1>{escape(title)}</h1><p class='muted'>{report['rows']} predictions in {len(windows)} windows of "
        f"{report['window']} rows · {escape(span)} · store {escape(report['store'])} · "
        f"generated {utc_time(report['generated'])} UTC</p>{status}"
    )
    marks = [i for i in range(1, len(windows)) if windows[i]["versions"] != windows[i - 1]["versions"]]
    volume = line_chart(
        {"rows per window": ([w["rows"] for w in windows], CUR)}, "rows per window", marks, x_name="window"
    )
    latency = line_chart(
        {
            "p50 ms": ([w["latency_ms"]["p50"] for w in windows], CUR),
            "p95 ms": ([w["latency_ms"]["p95"] for w in windows], BAD),
        },
        "latency per window",
        marks,
        x_name="window",
    )
    live = [w["performance"].get("metrics", {}).get(metric) for w in windows]
    estimated = [w["performance"].get("estimated", {}).get(metric) for w in windows]
    test = report["test"].get(metric)
    series = {f"live {metric}": (live, CUR), f"estimated {metric}": (estimated, "#e69f00")}
    if test is not None:
        series[f"test {metric}"] = ([test] * len(windows), REF)
    performance = line_chart(series, f"{metric} per window", marks, x_name="window")
    coverage = line_chart(
        {"label coverage": ([w["performance"]["coverage"] for w in windows], OK)}, "coverage", x_name="window"
    )
    drift_share = line_chart(
        {"share of features drifting": ([w["drift_share"] for w in windows], BAD)}, "drift", x_name="window"
    )
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
