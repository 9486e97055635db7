"""Time of the drift report: dlpipe's against a plain scipy loop over the same tests, and against
Evidently's DataDriftPreset when an Evidently interpreter is given, in one run.

The data are generated: a reference and a current table of `--rows` rows each with 15 numeric and
10 categorical columns (3 to 40 levels), four columns shifted in the current table. With a
reference over 1,000 rows the tests are Evidently's defaults for large data: Wasserstein distance
over the reference's standard deviation (numbers) and Jensen-Shannon distance (categories), with
PSI beside. dlpipe's figure is the whole per-feature table `dlpipe monitor` computes for a window
(drift, PSI, and the data-quality checks: missing, out of range, unseen categories). The scipy loop
computes drift and PSI only. Evidently, when installed in another environment (it pins its own
versions of common packages, so it is not one of dlpipe's dependencies), runs in a child process
on the same data written as Parquet; only its `run` is timed. This script reports, it does not
assert, and always exits 0.

    OMP_NUM_THREADS=1 python benchmarks/drift.py                          # 100,000 x 25, 3 rounds
    OMP_NUM_THREADS=1 python benchmarks/drift.py --evidently /tmp/evenv/bin/python
    python benchmarks/drift.py --quick                                    # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 15, 10
EVIDENTLY = """
import sys, time, json, pandas as pd
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
try:
    from evidently import Report
    from evidently.presets import DataDriftPreset
    legacy = False
except ImportError:
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    legacy = True
import evidently
times = []
for _ in range(int(sys.argv[3])):
    report = Report([DataDriftPreset()]) if not legacy else Report(metrics=[DataDriftPreset()])
    start = time.perf_counter()
    if legacy:
        report.run(reference_data=ref, current_data=cur)
    else:
        report.run(cur, ref)
    times.append(time.perf_counter() - start)
print(json.dumps({"version": evidently.__version__, "seconds": times}))
"""


def make_tables(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def table(shift: bool) -> pd.DataFrame:
        data = {}
        for i in range(NUMERIC):
            values = rng.gamma(2.0 + i % 3, 1.0, rows) if i % 2 else rng.normal(i, 1 + i % 4, rows)
            if shift and i in (0, 5):
                values = values + 0.5 * values.std()
            data[f"n{i}"] = values
        for i in range(CATEGORICAL):
            levels = 3 + 4 * i
            weights = np.linspace(1, 3, levels)
            if shift and i in (1, 6):
                weights = weights[::-1]
            data[f"c{i}"] = rng.choice([f"v{j}" for j in range(levels)], rows, p=weights / weights.sum())
        return pd.DataFrame(data)

    return table(False), table(True)


def dlpipe_report(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from dlpipe.monitor.columns import Column
    from dlpipe.monitor.report import Baseline, drift_table
    from dlpipe.spec import Monitoring

    columns = [Column(c, "numeric" if c.startswith("n") else "category") for c in reference.columns]
    baseline = Baseline(
        name="bench",
        version="1",
        task="regression",
        metric="rmse",
        goal={},
        test={},
        classes=None,
        columns=columns,
        known={},
        reference=reference,
        settings=Monitoring(),
    )
    return drift_table(baseline, current, {})


def scipy_loop(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    """What a user would write first: the same distances and PSI, column by column."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    out = {}
    for name in reference.columns:
        ref, cur = reference[name].dropna(), current[name].dropna()
        if name.startswith("n"):
            score = wasserstein_distance(ref, cur) / max(ref.std(ddof=0), 0.001)
            edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=10)
            a, b = np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
        else:
            keys = sorted(set(ref) | set(cur))
            a = ref.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
            b = cur.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
            score = jensenshannon(a, b)
        a, b = np.where(a == 0, 1e-4, a), np.where(b == 0, 1e-4, b)
        out[name] = {"score": float(score), "drift": bool(score >= 0.1), "psi": float(np.sum((a - b) * np.log(a / b)))}
    return out


def timed(fn, *args, rounds: int) -> tuple[list[float], dict]:
    times, result = [], {}
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return times, result


def evidently_times(python: str, reference: pd.DataFrame, current: pd.DataFrame, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        ref, cur = Path(folder) / "ref.parquet", Path(folder) / "cur.parquet"
        reference.to_parquet(ref)
        current.to_parquet(cur)
        done = subprocess.run(
            [python, "-c", EVIDENTLY, str(ref), str(cur), str(rounds)], capture_output=True, text=True, timeout=3600
        )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in each table (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (default 3; medians reported)")
    parser.add_argument("--evidently", help="a Python interpreter with Evidently installed")
    parser.add_argument("--quick", action="store_true", help="a small, fast run for smoke tests")
    args = parser.parse_args(argv)
    rows, rounds = (5_000, 1) if args.quick else (args.rows, args.rounds)
    try:
        import scipy

        import dlpipe

        reference, current = make_tables(rows)
        dlpipe_report(reference.head(1000), current.head(1000))  # imports and first-call costs out of the timing
        ours, report = timed(dlpipe_report, reference, current, rounds=rounds)
        plain, loop = timed(scipy_loop, reference, current, rounds=rounds)
        flagged = sorted(n for n, f in report.items() if f["drift"])
        agree = all(abs(report[n]["score"] - loop[n]["score"]) < 1e-9 for n in loop)
        print(f"drift report, {rows:,} rows x {NUMERIC + CATEGORICAL} columns against a same-size reference")
        print(f"machine: {platform.machine()}, python {platform.python_version()}, dlpipe {dlpipe.__version__}, ")
        print(f"  scipy {scipy.__version__}, pandas {pd.__version__}; median of {rounds} rounds")
        print(f"flagged: {', '.join(flagged)} (shifted: n0, n5, c1, c6); scores equal to the loop's: {agree}")
        print(f"dlpipe (drift, PSI and data quality): {statistics.median(ours):.3f} s")
        print(f"plain scipy loop (drift and PSI):     {statistics.median(plain):.3f} s")
        print(f"ratio dlpipe / scipy loop: {statistics.median(ours) / statistics.median(plain):.2f}")
        if args.evidently:
            result = evidently_times(args.evidently, reference, current, rounds)
            if "error" in result:
                print(f"evidently: failed ({result['error']})")
            else:
                seconds = statistics.median(result["seconds"])
                print(f"evidently {result['version']} DataDriftPreset: {seconds:.3f} s")
                print(f"ratio evidently / dlpipe: {seconds / statistics.median(ours):.1f}")
    except Exception:  # a report, not a test: show what failed, still exit 0
        traceback.print_exc()
        print("benchmark failed; no result", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
