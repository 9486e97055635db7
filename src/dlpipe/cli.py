"""The `dlpipe` command: parses, calls the stage functions, prints. Heavy modules load inside commands.

argparse, not a framework: the CLI is small, and its exit codes (0 ok, 2 bad input, 3 goal missed,
1 unexpected) and error lines must stay exactly as documented.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dlpipe import __version__
from dlpipe.cli_monitor import add_monitor_commands
from dlpipe.cli_registry import add_models_commands
from dlpipe.cli_runs import add_runs_commands

if TYPE_CHECKING:
    from dlpipe.collect import Collected
    from dlpipe.package import Model
    from dlpipe.spec import FileSource

EXIT_GOAL_MISSED = 3


def _echo(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def cmd_init(args: argparse.Namespace) -> int:
    """Infer task, column types, metric and a starting goal; write a commented pipeline file."""
    from dlpipe.define import init_pipeline
    from dlpipe.errors import ConfigError

    output = Path(args.output)
    if output.exists() and not args.force:
        raise ConfigError(f"{output} exists", fix="pass --force to overwrite it, or -o another path")
    text = init_pipeline(args.data, args.target, output, task=args.task)
    _echo(text)
    _echo(f"wrote {output}: review the goal, then `dlpipe run {output}`", err=True)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the file and the data's columns without training."""
    from rich.markup import escape

    from dlpipe.console import out
    from dlpipe.pipeline import Pipeline, summarise

    prepared = Pipeline.from_yaml(args.pipeline).prepare()
    out.print(f"[green]valid[/]: {escape(str(args.pipeline))}")
    for line in summarise(prepared):
        out.print(f"  {escape(line)}", soft_wrap=True)
    for column in prepared.preprocessor.columns:
        out.print(escape(f"  {column.name}: {column.type} ({column.reason})"), soft_wrap=True)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """All stages: collect, prepare, train, evaluate, test, package. Exit 0 goal met, 3 goal missed."""
    from rich.markup import escape

    from dlpipe.console import ProgressReporter, out, verdict
    from dlpipe.pipeline import Pipeline

    reporter = ProgressReporter(args.quiet)
    try:
        result = Pipeline.from_yaml(args.pipeline).run(args.run_dir, resume=args.resume, reporter=reporter)
    finally:
        reporter.close()
    verdict(result.metrics)
    out.print(escape(f"run folder: {result.folder}"))
    if result.passed and not args.no_register:
        from dlpipe.registry import register_run

        spec = Pipeline.from_yaml(args.pipeline).spec
        version, champion = register_run(result, spec, args.run_dir)
        where = version.folder.parent.parent
        if where.is_relative_to(Path.cwd()):  # shown as the user would type it
            where = where.relative_to(Path.cwd())
        if champion is None:
            out.print(escape(f"registered {version.reference} in {where}; the first version: champion"))
        else:
            out.print(
                escape(
                    f"registered {version.reference} in {where}; champion stays version {champion.version} "
                    f"(dlpipe models promote {version.name} {version.version} to switch)"
                ),
                soft_wrap=True,
            )
    return 0 if result.passed else EXIT_GOAL_MISSED


def cmd_predict(args: argparse.Namespace) -> int:
    """Batch prediction: the input rows with `prediction` (and `proba_<class>`) columns added."""
    from dlpipe.collect import collect
    from dlpipe.errors import ConfigError
    from dlpipe.package import load_model

    output = Path(args.output)
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"cannot write {output.suffix!r} files", where=str(output), fix="use .csv or .parquet")
    loaded = load_model(args.model)
    data = Path(args.data)
    from dlpipe.collect.folders import MEDIA_TYPES

    media = {c.name for c in loaded.preprocessor.columns if c.type in MEDIA_TYPES}
    collected = _read_folder(data, loaded) if data.is_dir() else collect(_data_source(data, loaded), media=media)
    frame = collected.frame
    unlisted = [s for s in collected.skipped if "row" not in s]  # files of a folder that give no row
    if unlisted:
        _echo(
            f"warning: {len(unlisted)} files of {args.data} were skipped and get no row "
            f"(first: {unlisted[0]['file']}: {unlisted[0]['reason']})",
            err=True,
        )
    if collected.dropped_lines:
        _echo(
            f"warning: {collected.dropped_lines} malformed rows of {args.data} were skipped "
            "(wrong number of fields); the output has one row per readable input row",
            err=True,
        )
    predicted = loaded.predict(frame)
    for skipped in collected.skipped:  # collection refused these paths: say so, not "missing value"
        if "row" in skipped and "problem" in predicted:
            row = predicted.index[skipped["row"]]
            predicted.loc[row, "problem"] = f"{skipped['column']}: {skipped['file']} is {skipped['reason']}"
    if "problem" in predicted:
        bad = predicted["problem"].astype(bool)
        _echo(f"warning: {int(bad.sum())} rows have no prediction; the `problem` column says why", err=True)
    result = frame.join(predicted, rsuffix="_predicted")
    output.parent.mkdir(parents=True, exist_ok=True)
    from dlpipe.rundir import replacing

    with replacing(output) as tmp:
        if output.suffix.lower() == ".parquet":
            result.to_parquet(tmp, index=False)
        else:
            result.to_csv(tmp, index=False)
    _echo(f"wrote {len(result)} predictions to {output}", err=True)
    return 0


def _read_folder(folder: Path, loaded: Model) -> Collected:
    """A folder of files to predict on, for a model with one image, audio or text column."""
    from dlpipe.collect.folders import COLUMNS, read_unlabelled
    from dlpipe.errors import DataError

    columns = [c for c in loaded.preprocessor.columns if c.type in COLUMNS.values()]
    if len(columns) != 1 or len(loaded.preprocessor.columns) != 1:
        raise DataError(
            "is a folder: only a model whose one input is an image, audio or text column predicts on a folder",
            where=str(folder),
            fix="pass a table with a column per input",
        )
    return read_unlabelled(folder, columns[0].type, columns[0].name)


def _data_source(data: Path, loaded: Model) -> FileSource:
    """The file to predict on. Its delimiter and encoding are sniffed on their own (a UTF-8 file must
    not be read with a Latin-1 training file's encoding); a model trained on a file without a header
    row reads one without a header too."""
    from dlpipe.spec import FileSource

    source = loaded.manifest["pipeline"].get("data", {}).get("source")
    headerless = isinstance(source, dict) and source.get("header") is False
    return FileSource(path=str(data), header=False if headerless else None)


def cmd_serve(args: argparse.Namespace) -> int:
    """The inference API for a model: Open Inference Protocol v2, /predict, /invocations."""
    from dlpipe.serve.operations import read_token
    from dlpipe.serve.server import serve

    token = read_token(path=args.token_file)
    _echo(
        f"serving {args.model} on http://{args.host}:{args.port} "
        f"({'bearer token required; ' if token else ''}docs at /docs; Ctrl-C stops)",
        err=True,
    )
    serve(
        args.model,
        args.host,
        args.port,
        token=token,
        store=args.store,
        runtime=args.runtime,
        threads=args.threads,
        max_body_mb=args.max_body_mb,
        max_batch_size=args.max_batch_size,
        max_delay_ms=args.max_delay_ms,
        max_queue=args.max_queue,
        shadow=args.shadow,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """A model as an ONNX file, or as a folder that builds a Docker image serving it."""
    import shutil

    from dlpipe.errors import ArtifactError, ConfigError
    from dlpipe.manifest import ONNX, find_model_folder, read_manifest

    folder = find_model_folder(args.model)
    manifest = read_manifest(folder)
    if args.format == "mlflow":
        from dlpipe.export.mlflow import export_mlflow

        out = Path(args.output or f"{manifest['name']}-mlflow")
        export_mlflow(folder, out)
        _echo(f"wrote {out}/: mlflow.pyfunc.load_model({str(out)!r}).predict(frame)", err=True)
        return 0
    if args.format == "docker":
        from dlpipe.export.docker import export_docker

        out = Path(args.output or f"{manifest['name']}-docker")
        files = export_docker(folder, out)
        _echo(f"wrote {out}/ ({len(files)} files): docker build -t {manifest['name'].lower()} {out}", err=True)
        return 0
    out = Path(args.output or f"{manifest['name']}.onnx")
    if out.suffix != ".onnx":
        raise ConfigError(f"an ONNX file ends in .onnx; received {out.name}", where=str(out))
    if ONNX not in manifest["files"]:
        reason = manifest.get("onnx", {}).get("error", "it was packaged with DLPIPE_ONNX=off")
        raise ArtifactError(f"the model has no model.onnx ({reason})", where=str(folder))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / ONNX, out)
    inputs = manifest["onnx"]["inputs"]
    described = ", ".join(f"{k} {v['dtype']}{v['shape']}" for k, v in inputs.items())
    _echo(f"wrote {out}: inputs {described}; output `output` (the preprocessed inputs come from dlpipe)", err=True)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of pipeline.yaml (for editor completion and checks)."""
    import json

    from dlpipe.spec import json_schema

    _echo(json.dumps(json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlpipe",
        description="From data and a goal to a tested, deployable deep learning model, with one pipeline.yaml.",
        epilog="Exit codes: 0 ok, 2 bad input, 3 goal missed, 1 unexpected failure. "
        "Add --debug anywhere for a traceback.",
    )
    parser.add_argument("--version", action="version", version=f"dlpipe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="infer task, types, metric and a goal from data; write a commented pipeline.yaml")
    p.add_argument("data", help="a data file (CSV, TSV, Parquet, JSON lines) or a folder with a subfolder per class")
    p.add_argument(
        "--target", "-t", help="target column name, or its 0-based position (a folder's target is its `label`)"
    )
    p.add_argument("--output", "-o", default="pipeline.yaml", help="where to write the file (default: pipeline.yaml)")
    p.add_argument("--task", choices=["classification", "regression"], help="override the inferred task")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("validate", help="check the pipeline file and the data's schema without training")
    p.add_argument("pipeline", help="the pipeline file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="all stages: collect, prepare, train, evaluate, test, package")
    p.add_argument("pipeline", help="the pipeline file")
    p.add_argument("--run-dir", default="runs", help="where run folders go (default: runs)")
    p.add_argument("--resume", action="store_true", help="continue the latest unfinished run from its checkpoint")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--no-register", action="store_true", help="do not add a model that meets its goal to the registry")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("predict", help="batch prediction with a model or run folder")
    p.add_argument("model", help="a model folder or a run folder")
    p.add_argument(
        "data", help="a data file with the training columns, or a folder of files for an image/audio/text model"
    )
    p.add_argument(
        "--output", "-o", default="predictions.csv", help="a .csv or .parquet file (default: predictions.csv)"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="the inference API for a model (Open Inference Protocol v2, /predict)")
    p.add_argument("model", help="a model folder or a run folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], help="auto (default): model.onnx when packaged")
    p.add_argument("--threads", type=int, help="threads for the model (default: the cores)")
    p.add_argument("--max-batch-size", type=int, help="rows per model call (default 32)")
    p.add_argument("--max-delay-ms", type=float, help="how long a batch waits for more rows (default 0)")
    p.add_argument("--max-queue", type=int, help="requests waiting before 503 (default 256)")
    p.add_argument("--max-body-mb", type=float, help="largest request body, after decompression (default 32)")
    p.add_argument(
        "--token-file", help="require `Authorization: Bearer <token>` (the file's first line; or set DLPIPE_TOKEN)"
    )
    p.add_argument("--store", help="prediction store URL (default: the model's monitoring.store); none logs nothing")
    p.add_argument(
        "--shadow", help="a model (e.g. models:/NAME@challenger) that answers the same rows for the log only"
    )
    p.set_defaults(func=cmd_serve)

    add_monitor_commands(sub)
    add_models_commands(sub)
    add_runs_commands(sub)

    p = sub.add_parser("export", help="a model as an ONNX file, a Docker build folder, or an MLflow pyfunc folder")
    p.add_argument("model", help="a model folder or a run folder")
    p.add_argument("--format", "-f", choices=["onnx", "docker", "mlflow"], required=True)
    p.add_argument(
        "--output", "-o", help="the file (onnx; default NAME.onnx) or folder (default NAME-docker, NAME-mlflow)"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("schema", help="print the JSON Schema of pipeline.yaml, for editors")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs a command and maps dlpipe's errors to one line and an exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    parser = build_parser()
    args = parser.parse_args([a for a in args_list if a != "--debug"])  # usage errors exit 2
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(0)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        _echo("interrupted", err=True)
        code = 130
    except Exception as exc:
        from dlpipe.console import error
        from dlpipe.errors import DlpipeError, StorageError, disk_full

        if debug:
            import traceback

            traceback.print_exc()
        if not isinstance(exc, DlpipeError) and disk_full(exc):
            exc = StorageError.full()
        if isinstance(exc, DlpipeError):
            error(exc.render())
            code = exc.exit_code
        elif isinstance(exc, OSError) and exc.filename:
            # a path the user gave that cannot be read or written: their input, not our bug
            error(f"{exc.filename}: {exc.strerror or exc}")
            code = 2
        else:
            error(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
            code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
