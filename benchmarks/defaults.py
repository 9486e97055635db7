"""The default model against the linear baseline on the bundled examples, over several splits.

Each example runs with dlpipe's defaults on split seeds 42, 0, 1, 2, 3; every run also fits the
linear baseline (logistic regression or RidgeCV) on the same split and preprocessing. The table
shows the mean test score of both, per-seed scores, and on how many splits the network is at
least as good. This is the measurement behind the defaults in `dlpipe/spec/models.py`.

    OMP_NUM_THREADS=1 python benchmarks/defaults.py              # about 1 minute
    OMP_NUM_THREADS=1 python benchmarks/defaults.py --quick      # one example, one split
    python benchmarks/defaults.py --set model.dropout=0.1        # compare a change
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml

from dlpipe.pipeline import Pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEEDS = [42, 0, 1, 2, 3]


def run(name: str, seeds: list[int], overrides: dict[str, object], runs: Path) -> dict[str, object]:
    config = yaml.safe_load((EXAMPLES / name / "pipeline.yaml").read_text())
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        config.setdefault(section, {})[key] = value
    metric = config["problem"]["metric"]
    rows = []
    start = time.perf_counter()
    for seed in seeds:
        config["data"]["split"]["seed"] = seed
        result = Pipeline.from_dict(config).run(runs)
        rows.append(
            (result.metrics["test"][metric], result.metrics["baseline"]["test"][metric], result.metrics["epochs_run"])
        )
    return {
        "name": name,
        "metric": metric,
        "network": [r[0] for r in rows],
        "baseline": [r[1] for r in rows],
        "epochs": statistics.mean(r[2] for r in rows),
        "seconds": time.perf_counter() - start,
    }


def report(results: list[dict[str, object]], seeds: list[int]) -> str:
    lines = [
        f"split seeds {seeds}; torch threads {torch.get_num_threads()}",
        "",
        f"{'example':14s} {'metric':9s} {'network':>8s} {'linear':>8s} {'wins':>5s} {'epochs':>6s}  per split",
    ]
    for r in results:
        wins = sum(a >= b for a, b in zip(r["network"], r["baseline"], strict=True))
        pairs = " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(r["network"], r["baseline"], strict=True))
        lines.append(
            f"{r['name']:14s} {r['metric']:9s} {statistics.mean(r['network']):8.4f} "
            f"{statistics.mean(r['baseline']):8.4f} {wins:>2d}/{len(seeds)} {r['epochs']:6.0f}  {pairs}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="wine on one split only (a smoke test)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a setting of every example, e.g. model.dropout=0.1",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    names, seeds = (["wine"], [42]) if args.quick else (["breast_cancer", "wine", "diabetes"], SEEDS)
    with tempfile.TemporaryDirectory() as runs:
        results = [run(name, seeds, overrides, Path(runs)) for name in names]
    print(report(results, seeds))


if __name__ == "__main__":
    main()
