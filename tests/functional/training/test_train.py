"""Both entry points end to end on the vendored real photos, run as SageMaker runs them (SM_* variables,
``--name value`` hyperparameters, a separate process)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image

from bincount.data.channel import ChannelDataset
from bincount.data.labels import index_to_count
from bincount.data.transforms import eval_transform
from bincount.model.network import load_model
from bincount.training.evaluation import evaluate_counts
from bincount.training.jobs import TRAINING_DIR, JobResult, hyperparameter_args, run_job, sagemaker_env
from bincount.training.metrics import RULE_NAMES, metric_definitions
from tests.support.training import FAST_HYPERPARAMETERS

pytestmark = pytest.mark.slow


def metric_values(log: str) -> dict[str, list[float]]:
    """Read a job log with the exact MetricDefinitions the tuning and training jobs get."""
    return {d["Name"]: [float(v) for v in re.findall(d["Regex"], log)] for d in metric_definitions()}


def test_final_job_writes_the_artifact_layout(trained_job: JobResult) -> None:
    model_dir = trained_job.model_dir
    assert (model_dir / "model.pth").is_file() and (model_dir / "model_config.json").is_file()
    code = model_dir / "code"
    assert (code / "endpoint_inference.py").is_file()
    assert (code / "bincount" / "__init__.py").is_file()
    for module in ("model/__init__.py", "model/network.py", "data/__init__.py", "data/labels.py", "data/transforms.py"):
        assert (code / "bincount" / module).is_file(), module
    assert not (code / "bincount" / "training").exists(), "only what the handler imports goes into code/"
    for name in ("evaluation.json", "loss_curves.png", "confusion_matrix.png"):
        assert (trained_job.output_dir / name).is_file(), name
    for plot in ("loss_curves.png", "confusion_matrix.png"):
        with Image.open(trained_job.output_dir / plot) as img:
            assert img.format == "PNG" and img.width > 100


def test_code_folder_runs_on_its_own(trained_job: JobResult) -> None:
    """The endpoint imports the handler from code/ alone: every project module it needs must be there."""
    code = trained_job.model_dir / "code"
    probe = (
        "import sys, endpoint_inference, bincount;"
        f"assert bincount.__file__.startswith({str(code)!r}), bincount.__file__;"
        f"m = endpoint_inference.model_fn({str(trained_job.model_dir)!r}); print(type(m).__name__, m.path)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=code, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_final_job_metric_lines_parse(trained_job: JobResult) -> None:
    values = metric_values(trained_job.log)
    epochs = FAST_HYPERPARAMETERS["epochs"]
    # one per epoch, plus the selected epoch's repeated last (what the tuning job reads as the objective)
    assert len(values["valid:loss"]) == epochs + 1
    assert len(values["valid:accuracy"]) == epochs + 1
    assert len(values["test:accuracy"]) == 1 and len(values["test:rmse"]) == 1
    assert 0.0 <= values["test:accuracy"][0] <= 1.0
    for rule in RULE_NAMES:
        assert values[f"rule:{rule}"] and set(values[f"rule:{rule}"]) <= {0.0, 1.0}, rule
        assert len(values[f"rule:{rule}"]) == epochs, rule
    assert len(values["profile:images_per_second"]) == epochs and values["profile:images_per_second"][0] > 0


def test_final_job_writes_diagnostics_a_trace_and_a_self_contained_report(trained_job: JobResult) -> None:
    diagnostics = json.loads((trained_job.output_dir / "diagnostics.json").read_text())
    assert set(diagnostics["rules"]) == set(RULE_NAMES)
    assert all(r["status"] in ("IssuesFound", "NoIssuesFound") for r in diagnostics["rules"].values())
    profile = diagnostics["profile"]
    assert profile["images_per_second"] > 0 and profile["peak_memory_mb"] > 100
    assert profile["data_seconds"] >= 0 and profile["compute_seconds"] > 0
    assert (trained_job.output_dir / "profile" / "trace.json").is_file()
    assert "Self CPU" in (trained_job.output_dir / "profile" / "top_operators.txt").read_text()
    page = (trained_job.output_dir / "report.html").read_text()
    assert all(rule in page for rule in RULE_NAMES)
    assert page.count("data:image/png;base64,") == 2 and "Top operators" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "training report:" in trained_job.log


def test_exploding_trial_stops_at_once_with_exit_2_and_diagnostics(channels, tmp_path) -> None:
    """A learning rate that blows the weights up: the next loss is not finite, and the trial stops right there."""
    result = run_job("hpo.py", channels, tmp_path / "job", {**FAST_HYPERPARAMETERS, "epochs": 3, "lr": 1e30})
    assert result.returncode == 2, result.log[-3000:]
    assert re.search(r"non-finite training loss \(\w+\) at epoch 1, step \d+", result.log)
    assert "epoch 1/3 done" not in result.log and "Traceback" not in result.log
    diagnostics = json.loads((result.output_dir / "diagnostics.json").read_text())
    assert diagnostics["rules"]["ExplodingTensor"]["status"] == "IssuesFound"
    assert diagnostics["rules"]["ExplodingTensor"]["epoch"] == 1


def test_evaluation_matches_the_models_predictions_on_the_test_channel(trained_job, channels) -> None:
    report = json.loads((trained_job.output_dir / "evaluation.json").read_text())
    model = load_model(trained_job.model_dir)
    dataset = ChannelDataset(channels["test"], eval_transform())
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.inference_mode():
        predicted = [index_to_count(i) for i in model(images).argmax(1).tolist()]
    expected = evaluate_counts([s.count for s in dataset.samples], predicted)
    assert report["n_test"] == len(dataset) == 10
    assert report["confusion_matrix"] == expected["confusion_matrix"]
    for key in ("accuracy", "rmse", "mae"):
        assert report[key] == pytest.approx(expected[key]), key
    assert report["per_class_accuracy"] == expected["per_class_accuracy"]
    assert metric_values(trained_job.log)["test:accuracy"][0] == pytest.approx(report["accuracy"], abs=1e-5)


def test_hpo_trial_reports_validation_each_epoch_and_never_tests(channels, tmp_path) -> None:
    """Also: a corrupt JPEG in the training channel is skipped with a warning and counted, never fatal."""
    train = tmp_path / "train"
    shutil.copytree(channels["train"], train)
    (train / "3" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    job_channels = {"train": train, "valid": channels["valid"]}
    result = run_job(
        "hpo.py", job_channels, tmp_path / "job", {**FAST_HYPERPARAMETERS, "epochs": 2, "sagemaker_program": "hpo.py"}
    )
    assert result.returncode == 0, result.log[-3000:]
    values = metric_values(result.log)
    assert len(values["valid:loss"]) == 3 and len(values["valid:accuracy"]) == 3
    assert values["valid:loss"][-1] == min(values["valid:loss"][:2]), "objective = the selected (best) epoch"
    assert values["test:accuracy"] == [] and values["test:rmse"] == []
    assert "skipping unreadable image" in result.log and "corrupt.jpg" in result.log
    assert "skipped 1 unreadable images" in result.log
    assert "ignoring unknown options: --sagemaker_program hpo.py" in result.log


def test_resumed_run_continues_at_the_next_epoch_and_matches_an_uninterrupted_run(channels, tmp_path) -> None:
    """Spot interruption after epoch 1, restart with the same checkpoint folder: same final weights as a run
    that was never interrupted (so training is also deterministic when seeded, data loader workers included)."""
    hp = {**FAST_HYPERPARAMETERS, "workers": 2}
    straight = run_job("train_model.py", channels, tmp_path / "straight", {**hp, "epochs": 2})
    assert straight.returncode == 0, straight.log[-3000:]

    job = tmp_path / "spot"
    first = run_job("train_model.py", channels, job, {**hp, "epochs": 1})
    assert first.returncode == 0, first.log[-3000:]
    resumed = run_job("train_model.py", channels, job, {**hp, "epochs": 2})
    assert resumed.returncode == 0, resumed.log[-3000:]
    assert "continuing at epoch 2" in resumed.log
    assert "epoch 1/2 done" not in resumed.log and "epoch 2/2 done" in resumed.log

    a = torch.load(straight.model_dir / "model.pth", weights_only=True)
    b = torch.load(resumed.model_dir / "model.pth", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed training diverged from the uninterrupted run"
    assert json.loads((straight.output_dir / "evaluation.json").read_text()) == json.loads(
        (resumed.output_dir / "evaluation.json").read_text()
    )


def test_checkpoint_from_other_hyperparameters_is_not_resumed(channels, tmp_path) -> None:
    job = tmp_path / "job"
    assert run_job("hpo.py", channels, job, {**FAST_HYPERPARAMETERS, "lr": 0.01}).returncode == 0
    other = run_job("hpo.py", channels, job, {**FAST_HYPERPARAMETERS, "lr": 0.02})
    assert other.returncode == 0
    assert "written with other settings" in other.log and "epoch 1/1 done" in other.log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_instance_gloo_run_produces_a_valid_artifact(channels, tmp_path) -> None:
    """Two 'instances' (SM_HOSTS) on loopback: data-parallel training, rank 0 writes the artifact."""
    hosts = ("algo-1", "algo-2")
    port = _free_port()
    procs = []
    for host in hosts:
        job = tmp_path / host
        (job / "model").mkdir(parents=True)
        env = {
            **os.environ,
            **sagemaker_env(channels, job / "model", job / "output", hosts=hosts, current_host=host),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        args = hyperparameter_args({**FAST_HYPERPARAMETERS, "epochs": 2, "checkpoint-dir": job / "ckpt"})
        procs.append(
            subprocess.Popen(
                [sys.executable, str(TRAINING_DIR / "train_model.py"), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(log[-2000:] for log in logs)
    assert "rank 0 of 2" in logs[0] and "rank 1 of 2" in logs[1]
    # Only rank 0 prints metrics and writes the artifact.
    assert metric_values(logs[0])["test:accuracy"] and not metric_values(logs[1])["valid:loss"]
    model = load_model(tmp_path / "algo-1" / "model")
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 5)
    assert not (tmp_path / "algo-2" / "model" / "model.pth").exists()
    report = json.loads((tmp_path / "algo-1" / "output" / "evaluation.json").read_text())
    assert report["n_test"] == 10


def test_debugger_hook_writes_the_loss_tensors(channels, tmp_path) -> None:
    """With a SageMaker DebugHookConfig file, smdebug records the losses in train and eval modes."""
    smd = pytest.importorskip("smdebug.trials", reason="smdebug is part of requirements-dev.txt")
    out = tmp_path / "debug"
    config = tmp_path / "debughookconfig.json"
    config.write_text(
        json.dumps(
            {
                "LocalPath": str(out),
                "HookParameters": {"train.save_interval": "1", "eval.save_interval": "1"},
                "CollectionConfigurations": [{"CollectionName": "losses", "CollectionParameters": {}}],
            }
        )
    )
    result = run_job(
        "train_model.py",
        channels,
        tmp_path / "job",
        FAST_HYPERPARAMETERS,
        extra_env={"SMDEBUG_CONFIG_FILE_PATH": str(config)},
    )
    assert result.returncode == 0, result.log[-3000:]
    assert "Debugger hook registered" in result.log
    from smdebug import modes

    trial = smd.create_trial(str(out))
    losses = trial.tensor_names(collection="losses")
    assert losses
    tensor = trial.tensor(losses[0])
    assert len(tensor.steps(mode=modes.TRAIN)) == 4  # 30 photos / batch 8
    assert len(tensor.steps(mode=modes.EVAL)) == 4  # valid then test: 10 photos / batch 8 each
    assert all(float(tensor.value(s, mode=modes.TRAIN)) > 0 for s in tensor.steps(mode=modes.TRAIN))


def test_empty_channel_fails_with_a_clear_error(channels, tmp_path) -> None:
    empty = tmp_path / "empty"
    for count in "12345":
        (empty / count).mkdir(parents=True)
    result = run_job("hpo.py", {"train": empty, "valid": channels["valid"]}, tmp_path / "job", FAST_HYPERPARAMETERS)
    assert result.returncode == 2
    assert f"channel {empty} holds no images" in result.log
    assert "Traceback" not in result.log


def test_class_folder_outside_1_to_5_fails_with_a_clear_error(channels, tmp_path) -> None:
    train = tmp_path / "train"
    shutil.copytree(channels["train"], train)
    (train / "7").mkdir()
    shutil.copy(next((train / "1").iterdir()), train / "7" / "x.jpg")
    result = run_job("hpo.py", {"train": train, "valid": channels["valid"]}, tmp_path / "job", FAST_HYPERPARAMETERS)
    assert result.returncode == 2
    assert "is not a class folder" in result.log and "Traceback" not in result.log


def test_missing_channel_variable_names_what_to_set(channels, tmp_path) -> None:
    result = run_job(
        "train_model.py",
        {"train": channels["train"], "valid": channels["valid"]},
        tmp_path / "job",
        FAST_HYPERPARAMETERS,
    )
    assert result.returncode == 2
    assert "--test or SM_CHANNEL_TEST" in result.log


def test_bad_hyperparameter_is_refused_by_name(channels, tmp_path) -> None:
    result = run_job("hpo.py", channels, tmp_path / "job", {**FAST_HYPERPARAMETERS, "lr": -1})
    assert result.returncode == 2 and "--lr must be positive" in result.log
    result = run_job("hpo.py", channels, tmp_path / "job2", {**FAST_HYPERPARAMETERS, "pretrained": "maybe"})
    assert result.returncode == 2 and "expected true or false" in result.log
