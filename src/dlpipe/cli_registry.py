"""`dlpipe models list | show | promote | rollback | delete`: the registry on the command line."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime


def _registry(args: argparse.Namespace):
    from dlpipe.registry import Registry, registry_root

    return Registry(registry_root(args.registry))


def cmd_list(args: argparse.Namespace) -> int:
    """A table of versions: name, version, created, test metrics, aliases, parent."""
    from rich.markup import escape
    from rich.table import Table

    from dlpipe.console import out

    registry = _registry(args)
    versions = registry.versions(args.name)
    if not versions:
        out.print(escape(f"no registered models in {registry.root}" + (f" named {args.name}" if args.name else "")))
        return 0
    table = Table("name", "version", "created (UTC)", "test metrics", "aliases", "parent", box=None, pad_edge=False)
    for v in versions:
        metrics = ", ".join(f"{k} {val:.4f}" for k, val in list(v.metrics.items())[:3] if isinstance(val, int | float))
        created = datetime.fromtimestamp(v.created, UTC).strftime("%Y-%m-%d %H:%M")
        parent = "" if v.parent is None else str(v.parent)
        table.add_row(escape(v.name), str(v.version), created, metrics, ", ".join(v.aliases), parent)
    out.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """One version's lineage and metrics, as JSON."""
    version = _registry(args).get(args.name, args.version)
    shown = {
        "reference": version.reference,
        "folder": str(version.folder),
        "created": datetime.fromtimestamp(version.created, UTC).isoformat(timespec="seconds"),
        "aliases": version.aliases,
        "parent": version.parent,
        "config_hash": version.config_hash,
        "data_fingerprint": version.data_fingerprint,
        "dlpipe_version": version.dlpipe_version,
        "run": version.run,
        "test": version.metrics,
    }
    print(json.dumps(shown, indent=2))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    before = _registry(args).set_alias(args.name, args.version, args.alias)
    moved = f"from version {before} " if before is not None else ""
    print(f"{args.name}@{args.alias}: {moved}to version {args.version}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    current, previous = _registry(args).rollback(args.name, args.alias)
    print(f"{args.name}@{args.alias}: rolled back from version {current} to version {previous}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _registry(args).delete(args.name, args.version, force=args.force)
    print(f"deleted {args.name} version {args.version}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    """A challenger on fresh data and feedback, promoted only if better on the newest rows: exit 0, else 5."""
    from rich.markup import escape
    from rich.table import Table

    from dlpipe.console import ProgressReporter, out
    from dlpipe.retrain import EXIT_KEPT, retrain

    reporter = ProgressReporter(args.quiet)
    try:
        outcome = retrain(args.pipeline, args.run_dir, store=args.store, reporter=reporter)
    finally:
        reporter.close()
    c = outcome.comparison
    table = Table("on the newest rows", "champion", "challenger", box=None, pad_edge=False)
    for name, value in c["champion"]["holdout"].items():
        table.add_row(name, f"{value:.4f}", f"{c['challenger']['holdout'][name]:.4f}")
    out.print(
        escape(
            f"holdout: the newest {c['holdout_rows']} rows; challenger trained on {c['training_rows']} rows "
            f"({c['feedback_rows']} from feedback); champion version {c['champion']['version']}"
        ),
        soft_wrap=True,
    )
    out.print(table)
    version = c["challenger"].get("version")
    if outcome.promoted:
        out.print(escape(f"PROMOTED: version {version} is the champion: {outcome.reason}"), soft_wrap=True)
    else:
        kept = f" (registered as version {version}, alias challenger)" if version else ""
        out.print(escape(f"KEPT the champion: {outcome.reason}{kept}"), soft_wrap=True)
    out.print(escape(f"comparison: {outcome.folder / 'comparison.json'}"))
    return 0 if outcome.promoted else EXIT_KEPT


def cmd_watch(args: argparse.Namespace) -> int:
    """monitor -> retrain in a loop, for deployments without a scheduler."""
    from dlpipe.retrain import watch
    from dlpipe.spec import parse_duration

    try:
        every = float(parse_duration(args.every))
    except ValueError as exc:
        from dlpipe.errors import ConfigError

        raise ConfigError(str(exc), where="--every") from None
    watch(args.pipeline, every, args.run_dir, iterations=args.rounds, say=lambda text: print(text, flush=True))
    return 0


def add_models_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="monitor the champion every so often; retrain when an alert fires")
    p.add_argument("pipeline", help="the pipeline file")
    p.add_argument("--every", default="1h", help="how often: 30m, 1h, 1d (default 1h)")
    p.add_argument("--run-dir", default="runs", help="where run folders go (default: runs)")
    p.add_argument("--rounds", type=int, help="stop after this many rounds (default: never)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("retrain", help="train a challenger on new data and feedback; promote it only if better")
    p.add_argument("pipeline", help="the pipeline file")
    p.add_argument("--run-dir", default="runs", help="where run folders go (default: runs)")
    p.add_argument("--store", help="prediction store URL for feedback (default: the file's monitoring.store)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_retrain)

    models = sub.add_parser("models", help="the model registry: list, show, promote, rollback, delete")
    verbs = models.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help: str, func, *, version: bool = False, alias: bool = False) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help)
        p.add_argument("name", nargs="?" if name == "list" else None, help="the model's name (its pipeline's name)")
        if version:
            p.add_argument("version", type=int, help="the version number")
        if alias:
            p.add_argument("--alias", default="champion", help="the alias (default: champion)")
        p.add_argument("--registry", help="the registry folder (default: DLPIPE_REGISTRY or ./dlpipe-registry)")
        p.set_defaults(func=func)
        return p

    verb("list", "registered versions with their aliases and test metrics", cmd_list)
    verb("show", "one version's lineage and metrics (JSON)", cmd_show, version=True)
    verb("promote", "point an alias (default champion) at a version", cmd_promote, version=True, alias=True)
    verb("rollback", "move an alias back to the version it pointed at before", cmd_rollback, alias=True)
    p = verb("delete", "remove a version (not one an alias points at, unless --force)", cmd_delete, version=True)
    p.add_argument("--force", action="store_true", help="delete even if an alias points at it (the alias goes too)")
