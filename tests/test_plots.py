"""Inline SVG charts: parallel coordinates place values as their axes say (log, linear, by position)."""

from __future__ import annotations

import re

from dlpipe.plots import parallel_coordinates, shade

AXES = [
    {"name": "training.learning_rate", "kind": "log", "low": 1e-4, "high": 1e-2},
    {"name": "model.hidden", "kind": "choice", "choices": [16, 32, 64]},
    {"name": "accuracy", "kind": "linear", "low": 0.5, "high": 1.0},
]


def _points(svg: str) -> list[list[tuple[float, float]]]:
    lines = re.findall(r'<polyline[^>]*points="([^"]*)"', svg)
    return [[tuple(map(float, p.split(","))) for p in line.split()] for line in lines]


def test_parallel_coordinates_place_values_along_log_linear_and_choice_axes():
    lines = [
        {"values": [1e-3, 32, 0.75], "share": 0.5, "title": "middle"},
        {"values": [1e-4, 16, 0.5], "share": 0.0, "title": "worst <bad>"},
        {"values": [1e-2, 64, 1.0], "share": 1.0, "title": "best", "best": True},
    ]
    svg = parallel_coordinates(AXES, lines, "trials")
    drawn = _points(svg)
    assert len(drawn) == 3
    worst, middle, best = drawn  # drawn worst first, the best last (on top)
    bottom, top = worst[0][1], best[0][1]
    assert bottom > top
    # 1e-3 is halfway between 1e-4 and 1e-2 on a log axis; 32 the middle of three choices; 0.75 of 0.5..1
    assert all(abs(y - (bottom + top) / 2) < 0.2 for _, y in middle)
    assert 'stroke-width="3.5"' in svg.split("<polyline")[-1]  # the best is bold
    assert shade(0.0) == "#d64545" and shade(1.0) == "#2e9e5b"
    assert "&lt;bad&gt;" in svg and "<bad>" not in svg  # titles are escaped


def test_a_value_off_its_axis_leaves_a_gap_not_an_error():
    lines = [{"values": ["nan", 128, 0.9], "share": 1.0, "title": "odd"}]
    (points,) = _points(parallel_coordinates(AXES, lines, "trials"))
    assert len(points) == 1  # only the objective: the rate is not a number, 128 not a choice


def test_no_trials_says_so():
    assert "no data" in parallel_coordinates(AXES, [], "trials")


def test_line_charts_number_their_x_axis_on_a_nice_step():
    import re

    from dlpipe.plots import line_chart

    chart = line_chart({"loss": ([1.0 / (i + 1) for i in range(40)], "#000")}, "loss", x_name="epoch")
    ticks = re.findall(r'text-anchor="(?:start|middle)">([^<]+)</text>', chart)
    assert ticks == ["epoch 1", "11", "21", "31"]  # every 10th of 40: at most 6 ticks
    short = line_chart({"loss": ([3.0, 2.0, 1.0], "#000")}, "loss", x_name="window")
    assert re.findall(r'text-anchor="(?:start|middle)">([^<]+)</text>', short) == ["window 1", "2", "3"]
