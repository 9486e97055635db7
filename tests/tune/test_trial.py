"""One trial's setting: the time a search may spend within a run's budget."""

from __future__ import annotations

import time

import pytest

from dlpipe.tune.trial import Search


def test_a_search_starts_trials_only_while_the_runs_budget_leaves_time():
    unbounded = Search(None, None)  # type: ignore[arg-type]  # time_left reads neither spec nor data
    assert unbounded.time_left(None) is None and unbounded.time_left(30.0) == 30.0
    budgeted = Search(None, None, deadline=time.time() + 20.0)  # type: ignore[arg-type]
    assert budgeted.time_left(None) == pytest.approx(20.0, abs=1.0)
    assert budgeted.time_left(5.0) == 5.0  # tuning.timeout counts within the budget
    spent = Search(None, None, deadline=time.time() - 1.0)  # type: ignore[arg-type]
    assert spent.time_left(60.0) == 0.0
