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

    versions = _registry(args).versions(args.name)
    if not versions:
        out.print(
            escape(f"no registered models in {_registry(args).root}" + (f" named {args.name}" if args.name else ""))
        )
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


def add_models_commands(sub: argparse._SubParsersAction) -> None:
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
