"""The local twin's pipeline steps: data sources, tuning like the cloud, training, the gate, and reuse."""

from __future__ import annotations

import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bincount.data.channel import DataError
from bincount.data.manifest import build_manifest, load_file_list
from bincount.data.sample import SAMPLE_DIR
from bincount.data.sources import build_dataset, dataset_from_folder, download_subset
from bincount.local.pipeline import RunFolder, TwinSettings, run_pipeline
from bincount.training.tuning import DEFAULT_RANGES, ContinuousRange, best_trial, objective_from_log, sample_trials


def test_trials_stay_inside_the_cloud_ranges_and_are_seeded() -> None:
    trials = sample_trials(50, seed=3)
    assert trials == sample_trials(50, seed=3) != sample_trials(50, seed=4)
    for r in DEFAULT_RANGES:
        values = [t[r.name] for t in trials]
        assert all(r.min_value <= v <= r.max_value for v in values), r.name
    lr = sorted(t["lr"] for t in trials)
    assert lr[len(lr) // 2] < 1e-2, "log scaling: the median learning rate sits well below the linear midpoint"
    assert [r.to_sagemaker()["Name"] for r in DEFAULT_RANGES] == ["lr", "eps", "weight-decay"]
    assert DEFAULT_RANGES[0].to_sagemaker() == {
        "Name": "lr",
        "MinValue": "1e-05",
        "MaxValue": "0.1",
        "ScalingType": "Logarithmic",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [(("x", 1.0, 1.0), "below max"), (("x", 0.0, 1.0, "Logarithmic"), "min > 0"), (("x", 1, 2, "Cubic"), "scaling")],
)
def test_bad_ranges_are_refused(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        ContinuousRange(*args)


def test_objective_is_the_last_valid_loss_and_best_is_the_lowest() -> None:
    assert objective_from_log("valid:loss=2.5\nvalid:loss=1.5\nvalid:loss=1.75\n") == 1.75
    assert objective_from_log("no metrics") is None
    trials = [{"objective": 2.0, "t": 1}, {"objective": None, "t": 2}, {"objective": 0.5, "t": 3}]
    assert best_trial(trials)["t"] == 3
    with pytest.raises(ValueError, match="no tuning trial finished"):
        best_trial([{"objective": None}])


def test_folder_of_abid_photos_with_metadata_is_split_and_laid_out(tmp_path) -> None:
    src = tmp_path / "abid"
    (src / "images").mkdir(parents=True)
    (src / "metadata").mkdir()
    labels = json.loads((SAMPLE_DIR / "labels.json").read_text())
    for image_id, count in labels.items():
        shutil.copy(SAMPLE_DIR / "images" / f"{image_id}.jpg", src / "images")
        (src / "metadata" / f"{image_id}.json").write_text(json.dumps({"EXPECTED_QUANTITY": count}))
    (src / "metadata" / "00004.json").write_text(json.dumps({"EXPECTED_QUANTITY": 9}))  # outside 1..5: skipped
    channels = dataset_from_folder(src, tmp_path / "run" / "data")
    laid_out = sorted(p.relative_to(tmp_path / "run" / "data") for p in (tmp_path / "run" / "data").rglob("*.jpg"))
    assert len(laid_out) == 49 and "00004.jpg" not in {p.name for p in laid_out}
    for p in laid_out:
        assert labels[p.stem] == int(p.parent.name)
    assert set(channels) == {"train", "valid", "test"}
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_folder_in_channel_layout_is_used_as_is(channels) -> None:
    root = channels["train"].parent
    assert dataset_from_folder(root, Path("/nonexistent")) == {k: root / k for k in ("train", "valid", "test")}


def test_folder_without_photos_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match=r"no photos with 1\.\.5 objects"):
        dataset_from_folder(tmp_path, tmp_path / "out")
    with pytest.raises(DataError, match="either --data DIR or --download N"):
        build_dataset(tmp_path / "out", data=tmp_path, download=5)


@pytest.fixture
def fake_abid_bucket(tmp_path):
    """A loopback HTTP server laid out like the public bucket (bin-images/<id>.jpg), every photo a real one."""
    root = tmp_path / "bucket"
    (root / "bin-images").mkdir(parents=True)
    photo = next((SAMPLE_DIR / "images").iterdir())
    for e in build_manifest(load_file_list(), max_per_class=2):
        shutil.copy(photo, root / "bin-images" / f"{e.id}.jpg")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_fetches_a_stratified_subset_over_http(fake_abid_bucket, tmp_path) -> None:
    channels = download_subset(10, tmp_path / "images", tmp_path / "data", base_url=fake_abid_bucket)
    photos = sorted((tmp_path / "data").rglob("*.jpg"))
    assert len(photos) == 10 and {int(p.parent.name) for p in photos} == {1, 2, 3, 4, 5}
    assert set(channels) == {"train", "valid", "test"}


def test_download_failure_says_what_to_do(tmp_path) -> None:
    with pytest.raises(DataError, match="without internet, use the bundled photos"):
        download_subset(5, tmp_path / "images", tmp_path / "data", base_url="http://127.0.0.1:9")


@pytest.mark.slow
def test_pipeline_tunes_trains_gates_and_reuses_finished_steps(tmp_path, capsys) -> None:
    settings = TwinSettings(trials=2, epochs=1, batch_size=8, accuracy_floor=0.0)
    result = run_pipeline(settings, tmp_path / "run", progress=print)
    assert len(result.trials) == 2 and all(t["objective"] is not None for t in result.trials)
    assert result.best["objective"] == min(t["objective"] for t in result.trials)
    assert (result.model_dir / "model.pth").is_file() and result.gate_passed
    assert (tmp_path / "run" / "tuning" / "results.json").is_file()
    # The final job ran with the best trial's hyperparameters, on the cached features: no backbone pass in training.
    log = (tmp_path / "run" / "training" / "job.log").read_text()
    assert f"lr={result.best['hyperparameters']['lr']:g}" in log
    assert "backbone forward passes while training: 0 images" in log
    for trial in result.trials:
        assert "backbone forward passes while training: 0 images" in Path(trial["log"]).read_text()
    capsys.readouterr()

    again = run_pipeline(settings, tmp_path / "run", progress=print)
    out = capsys.readouterr().out
    for step in ("dataset", "features", "tune", "train"):
        assert f"{step}: reused" in out, out
    assert again.evaluation == result.evaluation

    (result.model_dir / "model.pth").unlink()  # a lost artefact is rebuilt, not trusted
    run_pipeline(settings, tmp_path / "run", progress=print)
    assert "train: done" in capsys.readouterr().out and (result.model_dir / "model.pth").is_file()


def test_fresh_refuses_to_delete_a_folder_that_is_not_a_run(tmp_path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a bincount run folder"):
        RunFolder(tmp_path, fresh=True)
    assert (tmp_path / "precious.txt").exists()
