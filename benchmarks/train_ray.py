"""Ray Train against local training on the wine and digits examples: test metric, epochs, time.

Each example's own pipeline.yaml runs twice on the same split: once locally, once with
`training: {backend: ray, workers: N}` on a local Ray of N CPUs (started once, before timing).
The ratio is the Ray run's test metric over the local run's: comparable quality is the aim (issue
9), not speed: on one 2-core machine Ray adds its start-up (worker processes, ~15 s) and a report
per epoch, and data-parallel workers only pay off when a batch's work outweighs the gradient
exchange.

    OMP_NUM_THREADS=1 python benchmarks/train_ray.py              # wine and digits, about 3 minutes
    OMP_NUM_THREADS=1 python benchmarks/train_ray.py --quick      # wine only, 10 epochs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dlpipe.pipeline import Pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def config_of(name: str, data: Path) -> dict:
    config = yaml.safe_load((EXAMPLES / name / "pipeline.yaml").read_text())
    if name == "digits":
        sys.path.insert(0, str(EXAMPLES / "digits"))
        from make_data import make_data

        make_data(data / "digits")
        config["data"]["source"] = {"images": str(data / "digits")}
    return config


def compare(name: str, workers: int, runs: Path, quick: bool) -> dict[str, object]:
    config = config_of(name, runs)
    if quick:
        config.setdefault("training", {})["epochs"] = 10
    metric = config["problem"]["metric"]
    row: dict[str, object] = {"name": name, "metric": metric}
    for backend in ("local", "ray"):
        training = dict(config.get("training", {}))
        if backend == "ray":
            training |= {"backend": "ray", "workers": workers}
        start = time.perf_counter()
        result = Pipeline.from_dict({**config, "training": training}).run(runs / backend)
        row[backend] = {
            "test": result.metrics["test"][metric],
            "epochs": result.metrics["epochs_run"],
            "best": result.metrics["best_epoch"],
            "seconds": time.perf_counter() - start,
        }
    return row


def report(rows: list[dict], workers: int) -> str:
    lines = [
        f"Ray Train with {workers} workers against local training (same split, same config)",
        "",
        f"{'example':8s} {'metric':9s} {'local':>7s} {'ray':>7s} {'epochs':>9s} {'kept':>7s} {'seconds':>11s}",
    ]
    for r in rows:
        local, ray = r["local"], r["ray"]
        lines.append(
            f"{r['name']:8s} {r['metric']:9s} {local['test']:7.4f} {ray['test']:7.4f} "
            f"{local['epochs']:>4d}/{ray['epochs']:<4d} {local['best']:>3d}/{ray['best']:<3d} "
            f"{local['seconds']:5.1f}/{ray['seconds']:<5.1f}"
        )
    for r in rows:
        lines.append(f"ratio ray / local test {r['metric']} ({r['name']}): {r['ray']['test'] / r['local']['test']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="wine only, 10 epochs (a smoke test)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            names = ["wine"] if args.quick else ["wine", "digits"]
            rows = [compare(name, args.workers, Path(tmp), args.quick) for name in names]
    finally:
        ray.shutdown()
    print(report(rows, args.workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
