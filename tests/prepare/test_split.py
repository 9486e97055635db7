"""Splits: reproducible, shuffled (except time), stratified, group-disjoint, time-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlpipe.errors import DataError
from dlpipe.prepare.split import split_rows

N = 1000


def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "group": rng.integers(0, 80, N),
            "when": pd.date_range("2020-01-01", periods=N, freq="h").astype(str)[rng.permutation(N)],
            "y": np.sort(rng.integers(0, 2, N)),  # sorted by target, as many exports are
        }
    )


def split(method, **kw):
    f = frame()
    labels = f["y"].to_numpy() if method == "stratified" else None
    idx, *_ = split_rows(f, method=method, validation=0.15, test=0.15, seed=7, labels=labels, **kw)
    return f, idx


@pytest.mark.parametrize("method", ["random", "stratified"])
def test_partition_sizes_and_reproducibility(method):
    _, idx = split(method)
    all_rows = np.concatenate(list(idx.values()))
    assert sorted(all_rows.tolist()) == list(range(N))
    assert abs(len(idx["test"]) - 150) <= 2 and abs(len(idx["validation"]) - 150) <= 2
    _, again = split(method)
    assert all((idx[k] == again[k]).all() for k in idx)


def test_sorted_files_are_shuffled():
    f, idx = split("random")
    # with sorted targets an unshuffled cut would put only class 1 in test
    assert 0.3 < f["y"].iloc[idx["test"]].mean() < 0.7


def test_stratified_keeps_class_balance():
    f, idx = split("stratified")
    overall = f["y"].mean()
    for rows in idx.values():
        assert abs(f["y"].iloc[rows].mean() - overall) < 0.01


def test_group_split_never_shares_a_group():
    f, idx = split("group", column="group")
    groups = {k: set(f["group"].iloc[v]) for k, v in idx.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["validation"]
    assert not groups["validation"] & groups["test"]


def test_time_split_puts_the_newest_rows_in_test():
    f, idx = split("time", column="when")
    when = pd.to_datetime(f["when"])
    assert when.iloc[idx["train"]].max() < when.iloc[idx["validation"]].min()
    assert when.iloc[idx["validation"]].max() < when.iloc[idx["test"]].min()


def test_column_split_uses_the_given_labels():
    f = pd.DataFrame({"split": ["train", "TRAIN", "valid", "test", " test "], "x": range(5)})
    idx, *_ = split_rows(f, method="column", validation=0.1, test=0.1, seed=0, column="split")
    assert idx["train"].tolist() == [0, 1] and idx["validation"].tolist() == [2] and idx["test"].tolist() == [3, 4]


def test_column_split_refuses_unknown_labels():
    f = pd.DataFrame({"split": ["train", "holdout", "banana"], "x": range(3)})
    with pytest.raises(DataError, match="banana"):
        split_rows(f, method="column", validation=0.1, test=0.1, seed=0, column="split")


def test_missing_split_column_is_named():
    with pytest.raises(DataError, match="nope"):
        split_rows(frame(), method="group", validation=0.1, test=0.1, seed=0, column="nope")


def test_rows_without_a_split_label_are_counted_not_lost_silently():
    f = pd.DataFrame({"split": ["train", None, "test", "", "validation"], "x": range(5)})
    idx, _, unassigned = split_rows(f, method="column", validation=0.1, test=0.1, seed=0, column="split")
    assert unassigned == 2 and sum(len(v) for v in idx.values()) == 3


def test_time_split_keeps_a_timestamp_on_one_side_and_leaves_out_missing_times():
    when = ["2020-01-01"] * 50 + ["2020-01-02"] * 50 + [None] * 10
    f = pd.DataFrame({"when": when, "x": range(110)})
    idx, notes, unassigned = split_rows(f, method="time", validation=0.2, test=0.3, seed=0, column="when")
    assert unassigned == 10 and notes
    days = {k: set(f["when"].iloc[v]) for k, v in idx.items() if len(v)}
    assert all(len(days[a] & days[b]) == 0 for a in days for b in days if a != b)
    assert sum(len(v) for v in idx.values()) == 100


def test_group_split_says_when_groups_cannot_meet_the_fractions():
    f = pd.DataFrame({"group": ["big"] * 80 + [f"g{i}" for i in range(20)], "x": range(100)})
    _, notes, _ = split_rows(f, method="group", validation=0.15, test=0.15, seed=0, column="group")
    assert notes and "whole groups" in notes[0]


def test_time_split_compares_mixed_time_zones_in_utc():
    # 10:00+02:00 is 08:00 UTC, before 09:00-05:00 (14:00 UTC): order by the instant, not the text
    stamps = [f"2024-01-{d:02d} 10:00+02:00" if d % 2 else f"2024-01-{d:02d} 09:00-05:00" for d in range(1, 21)]
    frame = pd.DataFrame({"when": stamps, "y": range(20)})
    index, _, unassigned = split_rows(
        frame, method="time", validation=0.2, test=0.2, seed=0, column="when", labels=None
    )
    assert unassigned == 0
    assert max(index["train"]) < min(index["test"])
