"""Training: the loop (``train``), the features cache, evaluation, plots, metric names and regexes, the
diagnostics rules and report, distributed helpers, checkpoints, tuning ranges, the local job runner and the
opt-in smdebug hook. Exports are lazy: ``metrics`` and ``tuning`` (read by stacks/) stay import-light."""

from bincount.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "train_one_epoch": "train",
        "evaluate": "train",
        "get_args_parser": "train",
        "parse_args": "train",
        "main": "train",
        "TrainingMonitor": "diagnostics",
        "TrainingDiverged": "diagnostics",
        "evaluate_counts": "evaluation",
        "metric_definitions": "metrics",
        "format_metric": "metrics",
        "parse_metrics": "metrics",
        "DEFAULT_RANGES": "tuning",
        "sample_trials": "tuning",
        "best_trial": "tuning",
        "JobResult": "jobs",
        "run_job": "jobs",
    },
)
__all__ = __dir__()
