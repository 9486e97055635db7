"""The search space in Optuna's terms, and a trial's parameters turned back into a pipeline spec.

Both backends sample through these functions (Ray Tune through Optuna's sampler), so a space
means the same thing on one machine and on a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from dlpipe.spec import Dimension, PipelineSpec, Tuning


def quiet_optuna() -> None:
    """Optuna's per-trial log lines and experimental-feature warnings would drown the trials table."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def distribution(dim: Dimension) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of one dimension."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind == "choice":
        return CategoricalDistribution(list(dim.choices))
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1))
    return FloatDistribution(float(dim.low), float(dim.high), log=dim.kind == "log", step=dim.step)


def distributions(space: dict[str, Dimension]) -> dict[str, optuna.distributions.BaseDistribution]:
    return {path: distribution(dim) for path, dim in space.items()}


def ordinal(dim: Dimension) -> bool:
    """A list of numbers: searched by position in sorted order, so a model-based sampler sees that
    0.003 lies between 0.001 and 0.01 (as unordered categories it could not)."""
    return (
        dim.kind == "choice"
        and len(dim.choices) > 1
        and all(isinstance(c, int | float) and not isinstance(c, bool) for c in dim.choices)
    )


def by_position(cfg: Tuning) -> bool:
    """Whether numeric lists are searched by position: every method but grid (which lists values)."""
    return cfg.method != "grid"


def suggest(trial: optuna.Trial, cfg: Tuning) -> dict[str, Any]:
    """Sample one value per dimension through the trial (define-by-run: Ray's OptunaSearch takes
    this too); returns the values, whatever Optuna stores."""
    raw: dict[str, Any] = {}
    positions = by_position(cfg)
    for path, dim in cfg.space.items():
        if dim.kind == "choice":
            if positions and ordinal(dim):
                raw[path] = trial.suggest_int(path, 0, len(dim.choices) - 1)
            else:
                raw[path] = trial.suggest_categorical(path, list(dim.choices))
        elif dim.kind == "int":
            raw[path] = trial.suggest_int(path, int(dim.low), int(dim.high), step=int(dim.step or 1))
        else:
            raw[path] = trial.suggest_float(path, float(dim.low), float(dim.high), log=dim.kind == "log", step=dim.step)
    return values_of(raw, cfg)


def values_of(raw: dict[str, Any], cfg: Tuning) -> dict[str, Any]:
    """Optuna's stored parameters as the settings' values (positions in numeric lists resolved)."""
    return _by_position(raw, cfg, lambda choices, position: choices[int(position)])


def raw_of(values: dict[str, Any], cfg: Tuning) -> dict[str, Any]:
    """The inverse of `values_of`: settings' values as Optuna stores them (to queue a trial)."""
    return _by_position(values, cfg, lambda choices, value: choices.index(value))


def _by_position(params: dict[str, Any], cfg: Tuning, convert: Any) -> dict[str, Any]:
    """`params` with `convert(sorted choices, value)` applied to each numeric list's entry."""
    if not by_position(cfg):
        return dict(params)
    out = {}
    for path, value in params.items():
        dim = cfg.space.get(path)
        out[path] = convert(sorted(dim.choices), value) if dim is not None and ordinal(dim) else value
    return out


def finite_size(space: dict[str, Dimension]) -> int | None:
    """How many settings a space holds when every dimension is a list; None when any is a range."""
    import math

    if any(dim.kind != "choice" for dim in space.values()):
        return None
    return math.prod(len(dim.choices) for dim in space.values())


def grid(space: dict[str, Dimension]) -> dict[str, list[Any]]:
    return {path: list(dim.choices) for path, dim in space.items()}


def touches_features(space: dict[str, Dimension]) -> bool:
    """Whether a trial changes preprocessing (and so must prepare the data again)."""
    return any(path.startswith("features.") for path in space)


def check_columns(spec: PipelineSpec) -> None:
    """Each `features.<column>` path names a column of the data (the resolved spec lists them all)."""
    import difflib

    from dlpipe.errors import DataError
    from dlpipe.spec.tuning import tuning_of

    for path in tuning_of(spec).space:
        parts = path.split(".")
        if parts[0] == "features" and parts[1] not in spec.features:
            close = difflib.get_close_matches(parts[1], list(spec.features), n=1)
            raise DataError(
                f"tunes column {parts[1]!r}, which is not a feature column of the data",
                where=f"tuning.space.{path}",
                fix=f"did you mean {close[0]!r}?" if close else "fix the column name",
            )


def trial_spec(base: PipelineSpec, params: dict[str, Any]) -> PipelineSpec:
    """The pipeline one trial trains: the base with each searched setting set, and no tuning section."""
    from dlpipe.spec import validate_spec
    from dlpipe.spec.tuning import apply_params

    raw = apply_params(base.model_dump(mode="json", exclude_none=True, exclude={"tuning"}), params)
    return validate_spec(raw, source="tuning trial")


def make_sampler(cfg: Tuning, seed: int) -> optuna.samplers.BaseSampler:
    """The search method's sampler. `seed` differs per worker and per resume, so no two draw alike."""
    import optuna

    if cfg.method == "grid":
        from dlpipe.tune.grid import Grid

        # one order for every worker and every resume: a trial's number picks its grid point
        return Grid(grid(cfg.space), seed=cfg.seed)
    if cfg.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.method == "cmaes":
        # CMA-ES models numeric ranges; lists of choices are drawn at random beside it, as documented
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup_trials(cfg.total_trials), multivariate=True, group=False
    )


def startup_trials(budget: int) -> int:
    """TPE's random trials before its model proposes: a tenth of the budget, within 3..10.

    Optuna's default of 10 is a tenth of a 100-trial search; on 20 or 36 trials a quarter spent at
    random left the model too little budget to use what it learned (benchmarks/README.md, tuning.py:
    replayed over 50 seeds on a 36-setting grid, 9 random trials needed a median of 19 to reach its
    best, no better than random order; 3 needed 10.5)."""
    return min(10, max(3, budget // 10))


def warmup_epochs(epochs: int, patience: int = 0) -> int:
    """Epochs before the median rule may cut a trial: early stopping's patience, within 5..epochs/4."""
    return min(max(5, min(patience or epochs // 4, epochs // 4)), max(1, epochs - 1))


def percentile_warmup(epochs: int) -> int:
    """Epochs before the percentile rule may cut a trial: a tenth of them, at least 5 (and fewer than all)."""
    return min(max(5, epochs // 10), max(1, epochs - 1))


KEEP_PERCENTILE = 75.0  # `percentile` cuts a trial that trails three quarters of the finished ones


def make_pruner(cfg: Tuning, epochs: int, patience: int = 0) -> optuna.pruners.BasePruner:
    """The pruner, judged on the validation metric reported after every epoch."""
    import optuna

    if cfg.pruner == "median":
        # a trial runs as long as early stopping would give it (at least 5 epochs, at most a quarter of
        # them) before it can be cut: a well-regularised setting often starts slowly and wins late
        # (benchmarks/README.md: cut at epoch 4, the best digits setting was lost on 2 of 4 seeds)
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_epochs(epochs, patience))
    if cfg.pruner == "percentile":
        # Optuna's percentile rule: cut a trial whose best so far trails three quarters of the finished
        # trials at the same epoch. A model-based search finishes mostly good settings, so their median is
        # a good setting's, and a slow starter that wins late (the best digits setting) fell below it on
        # half of 100 replayed seeds; at 75 it was kept on 98% (benchmarks/README.md, tuning.py)
        return optuna.pruners.PercentilePruner(
            KEEP_PERCENTILE, n_startup_trials=5, n_warmup_steps=percentile_warmup(epochs)
        )
    if cfg.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 20), reduction_factor=3)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 20), max_resource=epochs)
    return optuna.pruners.NopPruner()
