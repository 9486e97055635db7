"""The model registry: immutable version folders and an SQLite index of versions, aliases and
their history.

    dlpipe-registry/
      index.db            versions (with lineage) and aliases, in SQLite (WAL)
      <name>/<version>/   a copy of the model folder, read-only; its model.json names its version

Registering copies the model folder beside its place, then, holding the index's write lock, takes
the next version number, renames the copy into place and records it. A crash before the record
leaves a folder the index does not list (it is replaced by the next registration), never a listed
version without its files. Alias moves are one transaction each; concurrent ones queue on the lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlpipe.errors import ArtifactError, ConfigError, StorageError, disk_full
from dlpipe.rundir import write_text

INDEX = "index.db"
DEFAULT = "dlpipe-registry"
REFERENCE = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z][A-Za-z0-9_-]*))$"
)
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL, folder TEXT NOT NULL,
    config_hash TEXT, data_fingerprint TEXT, parent INTEGER, metrics TEXT NOT NULL,
    dlpipe_version TEXT NOT NULL, run TEXT, PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alias_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, alias TEXT NOT NULL,
    version INTEGER NOT NULL, time REAL NOT NULL, undone INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class Version:
    name: str
    version: int
    created: float
    folder: Path
    config_hash: str | None
    data_fingerprint: str | None
    parent: int | None
    metrics: dict[str, Any]
    dlpipe_version: str
    run: str | None
    aliases: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return f"models:/{self.name}/{self.version}"


def registry_root(explicit: str | Path | None = None) -> Path:
    """Where references are looked up: the flag, else DLPIPE_REGISTRY, else ./dlpipe-registry."""
    return Path(explicit or os.environ.get("DLPIPE_REGISTRY") or DEFAULT)


def is_reference(text: str | Path) -> bool:
    return isinstance(text, str) and text.startswith("models:/")


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @contextmanager
    def _db(self, write: bool = False):
        """A connection; with `write`, inside one transaction holding the write lock from the start."""
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.root / INDEX, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            if not write:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # --- versions ---

    def register(
        self,
        model: str | Path,
        *,
        config_hash: str | None = None,
        data_fingerprint: str | None = None,
        parent: int | None = None,
        run: str | Path | None = None,
    ) -> Version:
        """Copy a model folder in as the next version of its name; returns that version."""
        from dlpipe import __version__
        from dlpipe.manifest import copy_model, find_model_folder, read_manifest

        source = find_model_folder(model)
        manifest = read_manifest(source)  # a tampered or half-written folder is refused here
        name = manifest["name"]
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        incoming = home / f".incoming-{uuid.uuid4().hex[:8]}"
        placed: Path | None = None
        try:
            copy_model(source, manifest, incoming)  # inside: a copy a full disk cut short is removed too
            with self._db(write=True) as db:
                # numbers only go up: a deleted version's number is never given to another model
                latest = db.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()[0]
                issued = db.execute("SELECT last FROM names WHERE name = ?", (name,)).fetchone()
                number = max(latest or 0, issued[0] if issued else 0) + 1
                db.execute("INSERT OR REPLACE INTO names VALUES (?, ?)", (name, number))
                _stamp(incoming, number, parent)
                target = home / str(number)
                if target.exists():  # a crash's leftover: registered by no row
                    _remove(target)
                os.replace(incoming, target)
                placed = target
                _read_only(target)
                metrics = manifest.get("metrics", {}).get("test", {})
                db.execute(
                    "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        number,
                        time.time(),
                        str(target.relative_to(self.root)),
                        config_hash,
                        data_fingerprint,
                        parent,
                        json.dumps(metrics),
                        __version__,
                        str(run) if run else None,
                    ),
                )
        except BaseException as exc:
            _remove(incoming)
            if placed is not None:
                _remove(placed)
            if disk_full(exc):
                raise StorageError.full(
                    f": {name} was not registered",
                    where=str(self.root),
                    fix="free space, then register the model again",
                ) from None
            raise
        return self.get(name, number)

    def versions(self, name: str | None = None) -> list[Version]:
        with self._db() as db:
            query = "SELECT * FROM versions" + (" WHERE name = ?" if name else "") + " ORDER BY name, version"
            rows = db.execute(query, (name,) if name else ()).fetchall()
            aliases = db.execute("SELECT name, version, alias FROM aliases ORDER BY alias").fetchall()
        by_version: dict[tuple[str, int], list[str]] = {}
        for alias_name, version, alias in aliases:
            by_version.setdefault((alias_name, version), []).append(alias)
        return [self._version(row, by_version.get((row[0], row[1]), [])) for row in rows]

    def _version(self, row: tuple, aliases: list[str]) -> Version:
        name, version, created, folder, config_hash, data, parent, metrics, dlpipe_version, run = row
        return Version(
            name, version, created, self.root / folder, config_hash, data, parent, json.loads(metrics),
            dlpipe_version, run, aliases,
        )  # fmt: skip

    def get(self, name: str, version: int) -> Version:
        found = [v for v in self.versions(name) if v.version == int(version)]
        if not found:
            known = ", ".join(str(v.version) for v in self.versions(name)) or "none"
            raise ArtifactError(f"model {name!r} has no version {version} (versions: {known})", where=str(self.root))
        return found[0]

    def alias(self, name: str, alias: str) -> Version | None:
        with self._db() as db:
            row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        return self.get(name, row[0]) if row else None

    def resolve(self, reference: str) -> Path:
        """The folder of `models:/NAME/VERSION` or `models:/NAME@ALIAS`."""
        match = REFERENCE.match(reference)
        if not match:
            raise ConfigError(
                f"{reference!r} is not a registry reference", fix="write models:/NAME/VERSION or models:/NAME@ALIAS"
            )
        name = match["name"]
        if match["version"]:
            return self.get(name, int(match["version"])).folder
        found = self.alias(name, match["alias"])
        if found is None:
            raise ArtifactError(
                f"model {name!r} has no alias {match['alias']!r}",
                where=str(self.root),
                fix=f"dlpipe models promote {name} VERSION --alias {match['alias']}",
            )
        return found.folder

    # --- aliases ---

    def set_alias(self, name: str, version: int, alias: str = "champion") -> int | None:
        """Point `alias` at a version (atomically); returns the version it pointed at before."""
        if not ALIAS.match(alias):
            raise ConfigError(f"{alias!r} is not an alias name", fix="letters, digits, - and _, starting with a letter")
        self.get(name, version)  # a clear error for a version that never was
        with self._db(write=True) as db:
            exists = db.execute("SELECT 1 FROM versions WHERE name = ? AND version = ?", (name, int(version)))
            if exists.fetchone() is None:  # deleted since: checked again under the lock
                raise ArtifactError(f"model {name!r} has no version {version}", where=str(self.root))
            before = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            now = time.time()
            db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)", (name, alias, int(version), now))
            db.execute(
                "INSERT INTO alias_history (name, alias, version, time) VALUES (?, ?, ?, ?)",
                (name, alias, int(version), now),
            )
        return before[0] if before else None

    def rollback(self, name: str, alias: str = "champion") -> tuple[int, int]:
        """Move `alias` back to the version it pointed at before its last move: (from, to)."""
        with self._db(write=True) as db:
            history = db.execute(
                "SELECT id, version FROM alias_history WHERE name = ? AND alias = ? AND undone = 0 ORDER BY id DESC",
                (name, alias),
            ).fetchall()
            existing = {v for (v,) in db.execute("SELECT version FROM versions WHERE name = ?", (name,))}
            earlier = [(i, v) for i, v in history[1:] if v in existing and v != history[0][1]]
            if not history or not earlier:
                raise ArtifactError(f"{name}@{alias} has no earlier version to roll back to", where=str(self.root))
            current = history[0][1]
            undone = [i for i, _ in history if i > earlier[0][0]]
            db.executemany("UPDATE alias_history SET undone = 1 WHERE id = ?", [(i,) for i in undone])
            db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)", (name, alias, earlier[0][1], time.time()))
        return current, earlier[0][1]

    def delete(self, name: str, version: int, force: bool = False) -> None:
        """Remove a version; refused while an alias points at it, unless `force` (which drops the alias)."""
        target = self.get(name, version)
        if target.aliases and not force:
            raise ArtifactError(
                f"{name} version {version} is {', '.join(target.aliases)}",
                fix="promote another version first, or pass --force",
            )
        with self._db(write=True) as db:
            pointing = db.execute("SELECT alias FROM aliases WHERE name = ? AND version = ?", (name, int(version)))
            aliases = [a for (a,) in pointing]
            if aliases and not force:  # promoted since the check above: checked again under the lock
                raise ArtifactError(f"{name} version {version} is {', '.join(aliases)}", fix="pass --force")
            db.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, int(version)))
            db.execute("DELETE FROM aliases WHERE name = ? AND version = ?", (name, int(version)))
            db.execute("UPDATE alias_history SET undone = 1 WHERE name = ? AND version = ?", (name, int(version)))
        _remove(target.folder)


def _stamp(folder: Path, version: int, parent: int | None) -> None:
    """Write the version into the copy's model.json (and its digest), so a served model knows it."""
    from dlpipe.manifest import MANIFEST, manifest_digest

    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["version"] = str(version)
    manifest["registry"] = {"version": version, "parent": parent}
    manifest.pop("manifest_sha256", None)
    manifest["manifest_sha256"] = manifest_digest(manifest)
    write_text(path, json.dumps(manifest, indent=2, allow_nan=False))


def _read_only(folder: Path) -> None:
    for file in folder.iterdir():
        file.chmod(0o444)
    folder.chmod(0o555)


def _remove(folder: Path) -> None:
    if not folder.exists():
        return
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)
    shutil.rmtree(folder, ignore_errors=True)


def pipeline_registry(spec: Any, run_dir: str | Path) -> Registry:
    """A pipeline's registry: `registry:` in its file, else dlpipe-registry beside the runs folder."""
    return Registry(Path(spec.registry) if spec.registry else Path(run_dir).resolve().parent / DEFAULT)


def register_run(result: Any, spec: Any, run_dir: str | Path) -> tuple[Version, Version | None]:
    """Register a run's model (one that met its goal) with its lineage: (the new version, the champion
    before it). The first version of a name becomes its champion; later ones wait for a promotion."""
    import hashlib

    registry = pipeline_registry(spec, run_dir)
    champion = registry.alias(spec.name, "champion")
    version = registry.register(
        result.model_folder,
        config_hash=hashlib.sha256((result.folder / "pipeline.yaml").read_bytes()).hexdigest()[:16],
        data_fingerprint=result.data_fingerprint,
        parent=champion.version if champion else None,
        run=result.folder.resolve(),
    )
    if champion is None:
        registry.set_alias(spec.name, version.version, "champion")
    return registry.get(spec.name, version.version), champion
