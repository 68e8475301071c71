"""``bincount up``: the whole system on one machine, offline: the local twin.

Builds the dataset, tunes, trains with the best hyperparameters and applies the quality gate (the cloud state
machine's steps, with the same entry points), then serves the model the way the cloud does: the inference handler
behind a local SageMaker runtime, the Lambda handler unchanged behind a local API Gateway, and a web page.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from bincount.paths import SAMPLE_DIR, WEB_DIR

DEFAULT_RUN_DIR = Path("runs/up")
ENDPOINT_NAME = "bincount-local"


def _say(line: str) -> None:
    print(line, flush=True)


def add_up_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run the whole system locally: data, tuning, training, gate, endpoint, API, web page")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", type=Path, help="a folder in the channel layout, or ABID photos with their metadata")
    data.add_argument("--download", type=int, metavar="N", help="fetch N subset photos from the public bucket")
    p.add_argument("--trials", type=int, default=3, help="tuning trials (default: 3)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial and for the final job (default: 2)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default: 16)")
    p.add_argument(
        "--pretrained",
        choices=("auto", "true", "false"),
        default="auto",
        help="ImageNet weights: auto uses them when they can be downloaded (default: auto)",
    )
    p.add_argument("--accuracy-floor", type=float, default=0.5, help="quality gate on test accuracy (default: 0.5)")
    p.add_argument("--seed", type=int, default=42, help="seed for tuning and training (default: 42)")
    p.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="run the backbone every epoch instead of once (for fine-tuning experiments; much slower)",
    )
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help=f"run folder (default: {DEFAULT_RUN_DIR})")
    p.add_argument("--fresh", action="store_true", help="start over instead of reusing finished steps")
    p.add_argument("--port", type=int, default=8080, help="API port on 127.0.0.1 (default: 8080)")
    p.add_argument("--endpoint-port", type=int, default=0, help="endpoint port (default: any free port)")
    p.add_argument("--api-key", help="require this x-api-key on the API (default: none locally)")
    p.add_argument("--no-serve", action="store_true", help="stop after the gate (no servers)")
    p.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    from bincount.data.channel import DataError
    from bincount.local.pipeline import StepFailed, TwinSettings, run_pipeline

    for name in ("trials", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    start = time.perf_counter()
    print("bincount local twin: the cloud pipeline's steps on this machine", flush=True)
    pretrained = resolve_pretrained(args.pretrained)
    settings = TwinSettings(
        data=args.data,
        download=args.download,
        trials=args.trials,
        epochs=args.epochs,
        batch_size=args.batch_size,
        pretrained=pretrained,
        accuracy_floor=args.accuracy_floor,
        seed=args.seed,
        cache_features=not args.no_feature_cache,
    )
    try:
        result = run_pipeline(settings, args.run_dir, fresh=args.fresh, progress=_say)
    except (DataError, StepFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(result, time.perf_counter() - start)
    if args.no_serve:
        return 0
    return serve(
        result.model_dir,
        port=args.port,
        endpoint_port=args.endpoint_port,
        api_key=args.api_key,
        report=result.output_dir / "report.html",
    )


def resolve_pretrained(choice: str) -> bool:
    """Use the ImageNet weights when asked or when they can be had; say loudly when we cannot."""
    if choice != "auto":
        pretrained = choice == "true"
    else:
        from bincount.model.network import PretrainedWeightsUnavailable, build_model

        try:
            build_model(pretrained=True)  # downloads once into torch's cache, where the jobs find it
            pretrained = True
        except PretrainedWeightsUnavailable:
            pretrained = False
    if pretrained:
        print("  weights: pretrained ImageNet ResNet-50", flush=True)
    else:
        print(
            "\n  !!! OFFLINE: no pretrained weights. The backbone starts from RANDOM weights, so the counts will be\n"
            "  !!! poor (about chance). With internet, the twin uses the ImageNet weights like the cloud.\n",
            flush=True,
        )
    return pretrained


def print_summary(result, seconds: float) -> None:  # result: bincount.local.pipeline.TwinResult
    rows = [("step", "time", "result")]
    rows += [(s.name, "reused" if s.reused else f"{s.seconds:.1f}s", s.detail) for s in result.steps]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    print(f"\nSummary ({seconds:.0f}s)")
    for r in rows:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}")
    print("\n  trial  lr         eps        weight-decay  valid:loss")
    for t in result.trials:
        hp, objective = t["hyperparameters"], t["objective"]
        shown = f"{objective:.4f}" if objective is not None else "failed"
        mark = "  <- best" if t["trial"] == result.best["trial"] else ""
        print(f"  {t['trial']:>5}  {hp['lr']:.2e}  {hp['eps']:.2e}  {hp['weight-decay']:.2e}      {shown}{mark}")
    print(f"\n  run folder:     {result.run_dir}")
    print(f"  model artifact: {result.model_dir}")
    print(f"  evaluation:     {result.output_dir / 'evaluation.json'} (+ loss_curves.png, confusion_matrix.png)")
    print(f"  report:         {result.output_dir / 'report.html'} (rules, profile: diagnostics.json)")


def serve(model_dir: Path, *, port: int, endpoint_port: int, api_key: str | None, report: Path | None = None) -> int:
    """Serve until Ctrl-C: local SageMaker runtime + local API Gateway with the Lambda handler and the page."""
    from bincount.local.api import MAX_CONCURRENCY, LocalApi, load_handler
    from bincount.local.endpoint import Endpoint, LocalSageMaker, ServedModel

    print("\nstarting the endpoint (`bincount serve`, the endpoint image's server, loading the model) ...", flush=True)
    try:
        model = ServedModel(model_dir, name=ENDPOINT_NAME)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        endpoint = LocalSageMaker([Endpoint(ENDPOINT_NAME, model)], port=endpoint_port).start()
    except OSError as e:
        model.close()
        print(f"error: cannot listen on 127.0.0.1:{endpoint_port}: {e}", file=sys.stderr)
        return 2
    # The Lambda reads its configuration from the environment, as in the cloud. Local dummy credentials:
    # boto3 signs requests, the local servers do not check them, and real credentials are never needed.
    os.environ.update(
        ENDPOINT_NAME=ENDPOINT_NAME,
        AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=endpoint.url,
        AWS_ENDPOINT_URL_SAGEMAKER=endpoint.url,
        AWS_ACCESS_KEY_ID="bincount-local",
        AWS_SECRET_ACCESS_KEY="bincount-local",  # not a secret: the local servers do not check signatures
    )
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    os.environ.update(AWS_REGION=region, AWS_DEFAULT_REGION=region)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        api = LocalApi(
            load_handler(), api_key=api_key, port=port, pages=web_pages(report), max_concurrency=MAX_CONCURRENCY
        ).start()
    except OSError as e:
        endpoint.stop()
        model.close()
        print(f"error: cannot listen on 127.0.0.1:{port} ({e}); choose another with --port", file=sys.stderr)
        return 2
    key_header = f' -H "x-api-key: {api_key}"' if api_key else ""
    sample = next((SAMPLE_DIR / "images").glob("*.jpg"))
    report_line = (
        f"  report:    {api.url}/report.html (training rules and profile)\n" if report and report.is_file() else ""
    )
    print(
        f"\nbincount is up:\n"
        f"  web page:  {api.url}/\n"
        f"  API:       POST {api.url}/count   GET {api.url}/health\n"
        f"  endpoint:  {endpoint.url}/endpoints/{ENDPOINT_NAME}/invocations (sagemaker-runtime wire API)\n"
        f"{report_line}"
        f"\ntry:\n  curl -s -X POST{key_header} -H 'Content-Type: image/jpeg' --data-binary @{sample} {api.url}/count\n"
        f"\nCtrl-C stops everything.",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        with contextlib.suppress(Exception):
            api.stop()
        with contextlib.suppress(Exception):
            endpoint.stop()
        model.close()
    print("stopped", flush=True)
    return 0


def web_pages(report: Path | None = None) -> dict[str, tuple[bytes, str]]:
    """The web page, served by the local API at ``/``, and the training run's report.html at ``/report.html``."""
    page = WEB_DIR / "index.html"
    pages = {"/": (page.read_bytes(), "text/html; charset=utf-8")}
    if report is not None and report.is_file():
        pages["/report.html"] = (report.read_bytes(), "text/html; charset=utf-8")
    return pages
