"""Tables larger than memory: streamed preparation and one training epoch at 1M and 10M rows.

For each size, a mixed-type Parquet file is generated (6 numbers with 5% missing, categories of
10, 100 and 1,000 levels, a yes/no column, a date, and a binary target a logistic model of them
decides), in row groups of 250,000 rows. A child process per size then runs what `dlpipe run`
runs for a streamed source: both passes of preparation (one-pass statistics with a hash split,
then every batch through the preprocessor into the tensor cache) and one epoch of training read
from the cache (with the epoch's validation scoring). The child reports its own peak resident
memory (`getrusage`), so each size is measured alone. The headline is time(large) / time(small)
for preparation and for the epoch, and the peak RSS at the largest size. It reports and never
asserts; it exits 0.

    OMP_NUM_THREADS=1 python benchmarks/scale.py                     # 1M and 10M rows (about 20 min)
    OMP_NUM_THREADS=1 python benchmarks/scale.py --quick             # smoke test: 20k and 100k rows
    python benchmarks/scale.py --sizes 1000000 --keep /data/scale    # keep the generated files
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GROUP_ROWS = 250_000
LEVELS = {"c10": 10, "c100": 100, "c1000": 1_000}


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """A mixed-type Parquet file written group by group (memory stays at one group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    effects = {name: rng.normal(0, 0.6, levels) for name, levels in LEVELS.items()}
    names = {name: np.array([f"{name}_{i}" for i in range(levels)], dtype=object) for name, levels in LEVELS.items()}
    weights = rng.normal(0, 1, 6)
    writer = None
    for start in range(0, rows, GROUP_ROWS):
        n = min(GROUP_ROWS, rows - start)
        numbers = rng.normal(0, 1, (n, 6))
        logit = numbers @ weights * 0.5
        columns = {}
        for j in range(6):
            values = numbers[:, j] * (j + 1) + 10 * j
            values[rng.random(n) < 0.05] = np.nan
            columns[f"n{j}"] = pa.array(values)
        for name, levels in LEVELS.items():
            codes = np.minimum(rng.zipf(1.3, n) - 1, levels - 1)
            logit += effects[name][codes]
            columns[name] = pa.array(names[name][codes])
        flag = rng.random(n) < 0.3
        logit += np.where(flag, 0.8, 0.0)
        columns["flag"] = pa.array(np.where(flag, "yes", "no"))
        days = rng.integers(0, 3 * 365, n)
        logit += np.sin(2 * np.pi * days / 365.25)  # a yearly season
        columns["when"] = pa.array(np.datetime64("2022-01-01") + days.astype("timedelta64[D]"))
        columns["target"] = pa.array((logit + rng.logistic(size=n) > 0).astype(np.int64))
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def child(path: str, batch_rows: int) -> None:
    """Prepare (streamed) and train one epoch; print the figures as one JSON line."""
    import torch

    from dlpipe.pipeline import Pipeline
    from dlpipe.train import fit_network

    config = {
        "name": "scale",
        "problem": {"task": "classification", "target": "target", "metric": "roc_auc"},
        "data": {"source": path, "streaming": "on", "batch_rows": batch_rows},
        "training": {"epochs": 1, "early_stopping": 0, "batch_size": 512, "threads": 1},
    }
    pipeline = Pipeline.from_dict(config)
    with tempfile.TemporaryDirectory(prefix="dlpipe-scale-") as folder:
        start = time.perf_counter()
        prepared = pipeline.prepare_streamed(Path(folder))
        prepared_at = time.perf_counter()
        prepare_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        torch.set_num_threads(1)
        _, _, state = fit_network(prepared)
        trained_at = time.perf_counter()
        cache_bytes = sum(f.stat().st_size for f in prepared.cache.folder.iterdir())
    rows = prepared.profile["rows"]
    print(
        json.dumps(
            {
                "rows": rows,
                "train_rows": len(prepared.splits["train"]),
                "prepare_s": round(prepared_at - start, 2),
                "epoch_s": round(trained_at - prepared_at, 2),
                "rows_per_s": round(rows / (prepared_at - start)),
                "prepare_peak_rss_mib": round(prepare_rss / 1024),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "cache_mib": round(cache_bytes / 2**20),
                "validation_roc_auc": state.history[-1]["validation"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--quick", action="store_true", help="smoke test: 20,000 and 100,000 rows")
    parser.add_argument("--keep", type=Path, help="write the Parquet files here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch_rows)
        return
    sizes = [20_000, 100_000] if args.quick else sorted(args.sizes)
    batch_rows = 8_192 if args.quick else args.batch_rows
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; 1 torch thread")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dlpipe-scale-data-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in sizes:
        path = folder / f"mixed_{rows}.parquet"
        if not path.exists():
            began = time.perf_counter()
            generate(path, rows)
            print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - began:.0f} s")
        command = [sys.executable, __file__, "--child", str(path), "--batch-rows", str(batch_rows)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            print(f"no result for {rows} rows:\n{done.stderr[-3000:]}")
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
        if not args.keep:
            path.unlink()
    if not args.keep:
        folder.rmdir()  # its files went as each size finished
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n{'rows':>12} {'prepare s':>10} {'rows/s':>10} {'epoch s':>8} {'peak RSS MiB':>13} {'cache MiB':>10}")
    for r in results:
        print(
            f"{r['rows']:>12,} {r['prepare_s']:>10} {r['rows_per_s']:>10,} {r['epoch_s']:>8} "
            f"{r['peak_rss_mib']:>13,} {r['cache_mib']:>10,}"
        )
    print(f"largest peak RSS of any child (RUSAGE_CHILDREN): {peak_children:,.0f} MiB")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        total = lambda r: r["prepare_s"] + r["epoch_s"]  # noqa: E731
        times = large["rows"] / small["rows"]
        print(
            f"ratio time({large['rows']:,}) / time({small['rows']:,}) at {times:.0f}x the rows: "
            f"prepare {large['prepare_s'] / small['prepare_s']:.2f}, epoch {large['epoch_s'] / small['epoch_s']:.2f}, "
            f"both {total(large) / total(small):.2f}"
        )


if __name__ == "__main__":
    main()
