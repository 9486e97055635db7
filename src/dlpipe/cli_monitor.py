"""The monitoring commands: `dlpipe monitor` and `dlpipe feedback` (heavy modules load inside)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_ALERT = 4


def _echo(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Drift, data quality, live performance and alerts from the prediction store. Exit 4 on an alert."""
    import json

    from dlpipe.errors import ConfigError
    from dlpipe.monitor.report import clean_json, monitor

    if args.windows < 1 or (args.window is not None and args.window < 10):
        raise ConfigError("--windows must be at least 1 and --window at least 10 rows")
    since = _since(args.since) if args.since else None
    report = monitor(
        args.model,
        store=args.store,
        since=since,
        window=args.window,
        windows=args.windows,
        all_versions=args.all_versions,
        webhook=args.webhook,
    )
    report = clean_json(report)
    if args.json:
        _echo(json.dumps(report, indent=2))
    else:
        from dlpipe.monitor.show import print_report

        print_report(report)
    if args.html:
        from dlpipe.monitor.dashboard import write_dashboard

        write_dashboard(report, Path(args.html))
        _echo(f"wrote {args.html}", err=True)
    if report.get("webhook", {}).get("error"):
        _echo(f"warning: {report['webhook']['error']}", err=True)
    if report["alerts"] and args.retrain:
        from dlpipe.retrain import EXIT_KEPT, retrain

        outcome = retrain(args.retrain, args.run_dir)
        _echo(("promoted: " if outcome.promoted else "kept the champion: ") + outcome.reason, err=True)
        return 0 if outcome.promoted else EXIT_KEPT
    return EXIT_ALERT if report["alerts"] else 0


def _since(text: str) -> float:
    """Unix seconds from a duration back from now (`24h`, `7d`) or an ISO date and time (UTC if no zone)."""
    import time
    from datetime import UTC, datetime

    from dlpipe.errors import ConfigError
    from dlpipe.spec import parse_duration

    try:
        return time.time() - float(parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is neither a duration (24h, 7d) nor an ISO time", where="--since") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def cmd_feedback(args: argparse.Namespace) -> int:
    """Attach ground-truth labels (a CSV of id,label) to logged predictions."""
    import time

    from dlpipe.errors import ConfigError
    from dlpipe.monitor.feedback import read_labels
    from dlpipe.monitor.report import Baseline
    from dlpipe.monitor.store import Store

    baseline = Baseline.from_folder(args.model)
    url = args.store or baseline.settings.store
    if url is None:
        raise ConfigError("no prediction store", where="monitoring.store", fix="pass --store URL")
    labels = read_labels(args.labels, baseline.classes)
    from dlpipe.errors import DlpipeError

    with Store(url) as store:
        try:
            stored = store.add_feedback(labels, time.time())
        except DlpipeError:
            raise
        except Exception as exc:  # unreachable, locked, refused: one line, as for dlpipe monitor
            raise store.failed(exc, "write to") from None
    _echo(f"stored {stored} labels for {baseline.name} in {store.url}", err=True)
    return 0


def add_monitor_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="drift, data quality, live performance and alerts (exit 4 on an alert)")
    p.add_argument("model", help="a model folder or a run folder")
    p.add_argument("--store", help="prediction store URL (default: the model's monitoring.store)")
    p.add_argument("--webhook", help="the URL that receives active alerts (default: the model's monitoring.webhook)")
    p.add_argument("--since", help="only predictions since then: a duration back from now (24h, 7d) or an ISO time")
    p.add_argument("--window", type=int, help="rows per window (default: monitoring.window, 1000)")
    p.add_argument("--windows", type=int, default=50, help="how many of the latest windows to read (default 50)")
    p.add_argument("--all-versions", action="store_true", help="include rows earlier versions of the model answered")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--html", help="also write a self-contained dashboard to this file")
    p.add_argument(
        "--retrain", metavar="PIPELINE", help="when an alert is active, run `dlpipe retrain PIPELINE` (exit 0 or 5)"
    )
    p.add_argument("--run-dir", default="runs", help="where a retrain's run folder goes (default: runs)")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("feedback", help="attach ground-truth labels (a CSV with columns id,label) to predictions")
    p.add_argument("model", help="a model folder or a run folder")
    p.add_argument("labels", help="a CSV file with the columns id and label")
    p.add_argument("--store", help="prediction store URL (default: the model's monitoring.store)")
    p.set_defaults(func=cmd_feedback)
