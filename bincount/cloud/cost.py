"""What one pipeline run and the idle endpoint cost: instance-hours x list price, ours against the classic recipe.

A run is modelled job by job, as the state machine runs them (docs/design.md §1):

- with the feature cache: ExtractFeatures (both views of every train and valid photo through the backbone, on the
  training instance type), ``tuningMaxJobs`` trials training the head on the cached features (no backbone pass) on
  the tuning instance type, and the final job (head on the features, then one backbone pass over the test photos);
- without it, and in the classic recipe: every trial and the final job run the backbone over the train and valid
  photos every epoch (forward only: the backbone is frozen), and the final job over the test photos once.

Each job bills its start-up overhead plus its compute. Early stopping, failed trials and spot interruptions are not
modelled (an upper bound for the trials). Step Functions, S3 and CloudWatch charges are cents and not counted.

Everything here is arithmetic on named constants: the throughputs and the overhead are ASSUMPTIONS (estimates for a
fp32 ResNet-50 at 224x224, not measurements on SageMaker), and the prices are us-east-1 on-demand list prices
recorded on :data:`PRICES_RECORDED_ON` - check them on the AWS pricing page before relying on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# --- prices -------------------------------------------------------------------------------------------------------
PRICES_REGION = "us-east-1"
PRICES_RECORDED_ON = "2024-11-01"
PRICES_SOURCE = "https://aws.amazon.com/sagemaker/pricing/ (on-demand list prices, us-east-1)"
PRICES_NOTE = (
    f"SageMaker on-demand list prices in {PRICES_REGION} as recorded on {PRICES_RECORDED_ON}, not fetched live: "
    f"check them on {PRICES_SOURCE.split(' ')[0]} before relying on them."
)

# USD per instance-hour: (training, real-time hosting); None where SageMaker offers no such instance.
PRICES_USD_PER_HOUR: dict[str, tuple[float | None, float | None]] = {
    "ml.t2.medium": (None, 0.056),
    "ml.t2.large": (None, 0.111),
    "ml.m5.large": (0.115, 0.115),
    "ml.m5.xlarge": (0.23, 0.23),
    "ml.m5.2xlarge": (0.461, 0.461),
    "ml.m5.4xlarge": (0.922, 0.922),
    "ml.c5.large": (None, 0.102),
    "ml.c5.xlarge": (0.204, 0.204),
    "ml.c5.2xlarge": (0.408, 0.408),
    "ml.c5.4xlarge": (0.816, 0.816),
    "ml.g4dn.xlarge": (0.736, 0.736),
    "ml.g4dn.2xlarge": (0.94, 0.94),
    "ml.g5.xlarge": (1.408, 1.408),
    "ml.g5.2xlarge": (1.515, 1.515),
    "ml.p3.2xlarge": (3.825, 3.825),
}

# --- ASSUMPTIONS: estimates, not measurements ------------------------------------------------------------------------
# Images per second of a fp32 ResNet-50 forward pass at 224x224, batch 32, JPEG decoding included, per training
# instance type (CPU types scale with their vCPUs; GPU types are bounded by decoding on their few vCPUs).
ASSUMED_BACKBONE_IMAGES_PER_SECOND: dict[str, float] = {
    "ml.m5.large": 12.0,
    "ml.m5.xlarge": 25.0,
    "ml.m5.2xlarge": 50.0,
    "ml.m5.4xlarge": 95.0,
    "ml.c5.xlarge": 30.0,
    "ml.c5.2xlarge": 60.0,
    "ml.c5.4xlarge": 115.0,
    "ml.g4dn.xlarge": 300.0,
    "ml.g4dn.2xlarge": 450.0,
    "ml.g5.xlarge": 500.0,
    "ml.g5.2xlarge": 700.0,
    "ml.p3.2xlarge": 600.0,
}
# MEASURED 2026-12-04 with bench/extraction_throughput.py (the extraction job's code on the 515 real sample photos,
# fp32, both views, 2 loader workers) on this project's 2-vCPU development machine (AMD EPYC), shared with other work
# at the time (load average 5-9): 2.12 photos/s, a pessimistic figure. JPEG decoding + transform alone (--decode-only):
# 247 photos/s on one CPU.
MEASURED_EXTRACTION_PHOTOS_PER_SECOND = 2.12
MEASURED_DECODE_PHOTOS_PER_SECOND_PER_CPU = 247.0
MEASURED_EXTRACTION_VCPUS = 2
VCPUS: dict[str, int] = {
    "ml.m5.large": 2,
    "ml.m5.xlarge": 4,
    "ml.m5.2xlarge": 8,
    "ml.m5.4xlarge": 16,
    "ml.c5.xlarge": 4,
    "ml.c5.2xlarge": 8,
    "ml.c5.4xlarge": 16,
}


def measured_cpu_throughputs() -> dict[str, float]:
    """Backbone images/s of the CPU training types: the measured rate per vCPU times their vCPUs (2 views/photo)."""
    per_vcpu = 2 * MEASURED_EXTRACTION_PHOTOS_PER_SECOND / MEASURED_EXTRACTION_VCPUS
    return {instance: round(per_vcpu * n, 1) for instance, n in VCPUS.items()}


# What the estimates use: measured (scaled by vCPUs) for CPU types, the assumptions above for GPU types.
BACKBONE_IMAGES_PER_SECOND: dict[str, float] = {**ASSUMED_BACKBONE_IMAGES_PER_SECOND, **measured_cpu_throughputs()}
MEASURED_EXTRACTION_NOTE = (
    f"CPU types: measured {MEASURED_EXTRACTION_PHOTOS_PER_SECOND:g} photos/s (x2 views = backbone images) on "
    f"{MEASURED_EXTRACTION_VCPUS} shared vCPUs here (pessimistic), scaled by each type's vCPUs; GPU types: "
    "estimates, not measured (no GPU was available), kept below both bounds: decoding measured at "
    f"{MEASURED_DECODE_PHOTOS_PER_SECOND_PER_CPU:g} photos/s per CPU (about 1,000 photos/s on a 4-vCPU GPU "
    "instance) and published fp16 ResNet-50 inference rates of a T4 (over 1,000 images/s)."
)


def throughput_sources() -> dict[str, str]:
    """Where each backbone throughput comes from, by instance type."""
    cpu = measured_cpu_throughputs()
    return {
        instance: ("measured, scaled by vCPUs" if instance in cpu else "estimate (GPU: decoding bound)")
        for instance in BACKBONE_IMAGES_PER_SECOND
    }


# Samples per second of the 5-way head on cached 2048-d features (a matrix product: any instance).
ASSUMED_HEAD_SAMPLES_PER_SECOND = 20_000.0
# Billed seconds every job spends before and after its compute: container start, downloading the channels and the
# source, uploading the artifact. Provisioning before that is not billed.
ASSUMED_JOB_OVERHEAD_SECONDS = 120.0
# Share of the on-demand price that managed spot training bills (AWS quotes savings of up to 90%).
ASSUMED_SPOT_PRICE_FRACTION = 0.30
HOURS_PER_MONTH = 730.0
ASSUMPTIONS_NOTE = (
    "GPU throughputs (ASSUMED_BACKBONE_IMAGES_PER_SECOND), the head's (ASSUMED_HEAD_SAMPLES_PER_SECOND), the "
    f"per-job overhead ({ASSUMED_JOB_OVERHEAD_SECONDS:g} s) and the spot price "
    f"({ASSUMED_SPOT_PRICE_FRACTION:.0%} of on-demand) are assumptions, not measurements; early stopping and spot "
    "interruptions are not modelled."
)


# --- the full dataset (setting dataset: full) ------------------------------------------------------------------------
# ASSUMED: images in the public bucket (AWS's registry says "over 500,000"); the manifest job's full/summary.json has
# the exact count.
ASSUMED_ABID_IMAGES = 536_000
# MEASURED on the 515 real ABID photos of the shared sample: 292 have 1..5 objects, mean JPEG size 57,537 bytes.
SAMPLE_PHOTOS, SAMPLE_KEPT = 515, 292
PHOTO_BYTES = 57_537
FULL_IMAGES = round(ASSUMED_ABID_IMAGES * SAMPLE_KEPT / SAMPLE_PHOTOS)
# ASSUMED: requests per second the manifest job's 64 threads sustain (about 150 ms per small GET or CopyObject).
ASSUMED_S3_REQUESTS_PER_SECOND = 400.0
# S3 Standard list prices, us-east-1, as recorded on PRICES_RECORDED_ON.
S3_USD_PER_1000_GET = 0.0004
S3_USD_PER_1000_PUT_COPY_LIST = 0.005
S3_USD_PER_GB_MONTH = 0.023
FULL_NOTE = (
    f"dataset=full: {FULL_IMAGES:,} images = {ASSUMED_ABID_IMAGES:,} ABID images (assumed; the manifest job's "
    f"summary.json has the exact count) x {SAMPLE_KEPT}/{SAMPLE_PHOTOS} with 1..5 objects (measured on the 515-photo "
    "sample), split 80/10/10; BuildFullManifest runs on the first full run only (its result is cached)."
)


class CostError(ValueError):
    """An input the estimate cannot use (an instance type without a price or throughput, a bad count)."""


@dataclass(frozen=True)
class Dataset:
    """Photos per split."""

    train: int
    valid: int
    test: int

    @property
    def total(self) -> int:
        return self.train + self.valid + self.test


@dataclass(frozen=True)
class Recipe:
    """What a pipeline run does, as far as cost goes (the settings of :mod:`bincount.cloud.settings` that matter)."""

    name: str
    tuning_instance_type: str
    training_instance_type: str
    endpoint_instance_type: str
    tuning_jobs: int
    epochs: int
    feature_cache: bool
    use_spot: bool
    final_epochs: int | None = None  # the final job's epochs when they differ from the trials'
    dataset: str = "subset"  # "full": the manifest job, its S3 requests and the photos' storage are added
    extraction_instances: int = 1
    training_instances: int = 1  # the final job's; every trial's too without the feature cache

    @property
    def training_epochs(self) -> int:
        return self.epochs if self.final_epochs is None else self.final_epochs


# The classic recipe the issue measures against: no cache, no spot.
CLASSIC = Recipe(
    name="classic",
    tuning_instance_type="ml.m5.2xlarge",
    training_instance_type="ml.g4dn.xlarge",
    endpoint_instance_type="ml.t2.medium",
    tuning_jobs=6,
    epochs=4,
    final_epochs=20,
    feature_cache=False,
    use_spot=False,
)


@dataclass(frozen=True)
class JobCost:
    """One job (or the tuning job's trials together): billed hours and what they cost."""

    step: str
    instance_type: str
    jobs: int
    backbone_images: int  # backbone forward passes, all jobs together
    hours: float  # billed instance-hours, all jobs together
    on_demand_usd: float
    spot_usd: float
    instances: int = 1  # per job


@dataclass(frozen=True)
class Charge:
    """A charge that is not instance-hours (S3 requests), the same with spot or on-demand."""

    item: str
    quantity: int
    usd: float


@dataclass(frozen=True)
class RunCost:
    """One pipeline run of a recipe, and its endpoint idling for a month."""

    recipe: Recipe
    dataset: Dataset
    jobs: list[JobCost]
    endpoint_usd_per_month: float
    endpoint_usd_per_hour: float
    charges: list[Charge] = field(default_factory=list)  # beyond instance-hours: S3 requests (full dataset)
    storage_usd_per_month: float = 0.0

    @property
    def hours(self) -> float:
        return sum(j.hours for j in self.jobs)

    @property
    def other_usd(self) -> float:
        return sum(c.usd for c in self.charges)

    @property
    def on_demand_usd(self) -> float:
        return sum(j.on_demand_usd for j in self.jobs) + self.other_usd

    @property
    def spot_usd(self) -> float:
        return sum(j.spot_usd for j in self.jobs) + self.other_usd

    @property
    def billed_usd(self) -> float:
        """What the run is billed with the recipe's own capacity choice (useSpot)."""
        return self.spot_usd if self.recipe.use_spot else self.on_demand_usd

    @property
    def backbone_images(self) -> int:
        return sum(j.backbone_images for j in self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": asdict(self.recipe),
            "dataset": {**asdict(self.dataset), "total": self.dataset.total},
            "jobs": [asdict(j) for j in self.jobs],
            "hours": self.hours,
            "onDemandUsd": self.on_demand_usd,
            "spotUsd": self.spot_usd,
            "billedUsd": self.billed_usd,
            "backboneImages": self.backbone_images,
            "images": self.dataset.total,
            "charges": [asdict(c) for c in self.charges],
            "otherUsd": self.other_usd,
            "storageUsdPerMonth": self.storage_usd_per_month,
            "endpointUsdPerHour": self.endpoint_usd_per_hour,
            "endpointUsdPerMonth": self.endpoint_usd_per_month,
        }


def training_price(instance_type: str, prices: Mapping[str, tuple[float | None, float | None]]) -> float:
    price = prices.get(instance_type, (None, None))[0]
    if price is None:
        raise CostError(
            f"no SageMaker training price for instance type {instance_type!r} in the price table "
            f"({PRICES_REGION}, {PRICES_RECORDED_ON}); known: {', '.join(sorted(k for k, v in prices.items() if v[0]))}"
        )
    return price


def hosting_price(instance_type: str, prices: Mapping[str, tuple[float | None, float | None]]) -> float:
    price = prices.get(instance_type, (None, None))[1]
    if price is None:
        raise CostError(
            f"no SageMaker hosting price for instance type {instance_type!r} in the price table "
            f"({PRICES_REGION}, {PRICES_RECORDED_ON}); known: {', '.join(sorted(k for k, v in prices.items() if v[1]))}"
        )
    return price


def backbone_throughput(instance_type: str, throughputs: Mapping[str, float]) -> float:
    if instance_type not in throughputs:
        raise CostError(
            f"no assumed ResNet-50 throughput for instance type {instance_type!r} "
            f"(ASSUMED_BACKBONE_IMAGES_PER_SECOND knows: {', '.join(sorted(throughputs))})"
        )
    return throughputs[instance_type]


@dataclass(frozen=True)
class CostModel:
    """The constants an estimate uses; the defaults are the module's (override them in tests or what-ifs)."""

    prices: Mapping[str, tuple[float | None, float | None]] = field(default_factory=lambda: PRICES_USD_PER_HOUR)
    backbone_images_per_second: Mapping[str, float] = field(default_factory=lambda: BACKBONE_IMAGES_PER_SECOND)
    head_samples_per_second: float = ASSUMED_HEAD_SAMPLES_PER_SECOND
    job_overhead_seconds: float = ASSUMED_JOB_OVERHEAD_SECONDS
    spot_price_fraction: float = ASSUMED_SPOT_PRICE_FRACTION

    def job(
        self,
        step: str,
        instance_type: str,
        *,
        jobs: int,
        backbone_images: int,
        head_samples: int = 0,
        instances: int = 1,
        serial_backbone_images: int = 0,
        extra_seconds: float = 0.0,
    ) -> JobCost:
        """``jobs`` identical jobs, each running ``backbone_images`` backbone passes and ``head_samples`` head steps
        spread over ``instances`` (data parallel), then ``serial_backbone_images`` on one instance while the others
        wait (billed alike), plus ``extra_seconds`` of other work."""
        price = training_price(instance_type, self.prices)
        backbone = backbone_images + serial_backbone_images
        rate = backbone_throughput(instance_type, self.backbone_images_per_second) if backbone else 1.0
        seconds = (
            self.job_overhead_seconds
            + extra_seconds
            + head_samples / instances / self.head_samples_per_second
            + backbone_images / instances / rate
            + serial_backbone_images / rate
        )
        hours = jobs * instances * seconds / 3600
        return JobCost(
            step=step,
            instance_type=instance_type,
            jobs=jobs,
            instances=instances,
            backbone_images=jobs * backbone,
            hours=hours,
            on_demand_usd=hours * price,
            spot_usd=hours * price * self.spot_price_fraction,
        )

    def run(self, recipe: Recipe, dataset: Dataset) -> RunCost:
        """The jobs of one pipeline run of ``recipe`` on ``dataset``."""
        if recipe.tuning_jobs < 1 or recipe.epochs < 1 or recipe.training_epochs < 1:
            raise CostError(f"tuning jobs and epochs must be at least 1, got {recipe}")
        if min(recipe.extraction_instances, recipe.training_instances) < 1:
            raise CostError(f"instance counts must be at least 1, got {recipe}")
        fit = dataset.train + dataset.valid  # photos one epoch trains on and validates on
        n_train = recipe.training_instances
        jobs = full_dataset_jobs(self, recipe) if recipe.dataset == "full" else []
        if recipe.feature_cache:
            jobs += [
                # Both views (as is, flipped) of every train and valid photo, once, each instance on its shard.
                self.job(
                    "ExtractFeatures",
                    recipe.training_instance_type,
                    jobs=1,
                    backbone_images=2 * fit,
                    instances=recipe.extraction_instances,
                ),
                self.job(
                    "Tune (trials)",
                    recipe.tuning_instance_type,
                    jobs=recipe.tuning_jobs,
                    backbone_images=0,
                    head_samples=recipe.epochs * fit,
                ),
                self.job(
                    "Train",
                    recipe.training_instance_type,
                    jobs=1,
                    backbone_images=0,
                    serial_backbone_images=dataset.test,  # the test runs on rank 0 alone
                    head_samples=recipe.training_epochs * fit,
                    instances=n_train,
                ),
            ]
        else:
            jobs += [
                self.job(
                    "Tune (trials)",
                    recipe.tuning_instance_type,
                    jobs=recipe.tuning_jobs,
                    backbone_images=recipe.epochs * fit,
                    instances=n_train,
                ),
                self.job(
                    "Train",
                    recipe.training_instance_type,
                    jobs=1,
                    backbone_images=recipe.training_epochs * fit,
                    serial_backbone_images=dataset.test,
                    instances=n_train,
                ),
            ]
        hourly = hosting_price(recipe.endpoint_instance_type, self.prices)
        full = recipe.dataset == "full"
        return RunCost(
            recipe=recipe,
            dataset=dataset,
            jobs=jobs,
            endpoint_usd_per_hour=hourly,
            endpoint_usd_per_month=hourly * HOURS_PER_MONTH,
            charges=s3_charges(recipe, dataset) if full else [],
            storage_usd_per_month=dataset.total * PHOTO_BYTES / 1e9 * S3_USD_PER_GB_MONTH if full else 0.0,
        )


@dataclass(frozen=True)
class Comparison:
    ours: RunCost
    classic: RunCost

    def to_json(self) -> dict[str, Any]:
        return {
            "region": PRICES_REGION,
            "pricesRecordedOn": PRICES_RECORDED_ON,
            "pricesNote": PRICES_NOTE,
            "assumptionsNote": ASSUMPTIONS_NOTE,
            "assumptions": {
                "backboneImagesPerSecond": dict(BACKBONE_IMAGES_PER_SECOND),
                "measuredNote": MEASURED_EXTRACTION_NOTE,
                "headSamplesPerSecond": ASSUMED_HEAD_SAMPLES_PER_SECOND,
                "jobOverheadSeconds": ASSUMED_JOB_OVERHEAD_SECONDS,
                "spotPriceFraction": ASSUMED_SPOT_PRICE_FRACTION,
                "hoursPerMonth": HOURS_PER_MONTH,
            },
            "dataset": self.ours.recipe.dataset,
            "images": self.ours.dataset.total,
            "hours": self.ours.hours,
            "onDemandUsd": self.ours.on_demand_usd,
            "spotUsd": self.ours.spot_usd,
            "billedUsd": self.ours.billed_usd,
            "throughputs": throughput_sources(),
            **({"fullDatasetNote": FULL_NOTE} if self.ours.recipe.dataset == "full" else {}),
            "ours": self.ours.to_json(),
            "classic": self.classic.to_json(),
        }


def full_dataset(images: int = FULL_IMAGES) -> Dataset:
    """The full dataset's split sizes (80/10/10)."""
    train, valid = round(0.8 * images), round(0.1 * images)
    return Dataset(train=train, valid=valid, test=images - train - valid)


def _manifest_requests(images: int) -> tuple[int, int, int]:
    """(LIST pages, metadata GETs, photo copies) of the manifest job."""
    return -(-ASSUMED_ABID_IMAGES // 1000), ASSUMED_ABID_IMAGES, images


def full_dataset_jobs(model: CostModel, recipe: Recipe) -> list[JobCost]:
    """BuildFullManifest: list, read every metadata object, copy the kept photos (first full run only)."""
    from bincount.data.full_manifest import MANIFEST_INSTANCE_TYPE

    pages, gets, copies = _manifest_requests(FULL_IMAGES)
    return [
        model.job(
            "BuildFullManifest",
            MANIFEST_INSTANCE_TYPE,
            jobs=1,
            backbone_images=0,
            extra_seconds=(pages + gets + copies) / ASSUMED_S3_REQUESTS_PER_SECOND,
        )
    ]


def s3_charges(recipe: Recipe, dataset: Dataset) -> list[Charge]:
    """S3 requests of a full run: the manifest job's, and every photo download SageMaker makes for the jobs."""
    pages, gets, copies = _manifest_requests(dataset.total)
    fit, n = dataset.train + dataset.valid, recipe.training_instances
    if recipe.feature_cache:  # extraction reads train+valid once (sharded); the final job's hosts each the test
        downloads = fit + n * dataset.test
    else:  # every trial's and the final job's hosts each read the photos they train on
        downloads = recipe.tuning_jobs * n * fit + n * (fit + dataset.test)
    return [
        Charge("S3 LIST (metadata)", pages, pages * S3_USD_PER_1000_PUT_COPY_LIST / 1000),
        Charge("S3 GET (metadata)", gets, gets * S3_USD_PER_1000_GET / 1000),
        Charge("S3 COPY (photos)", copies, copies * S3_USD_PER_1000_PUT_COPY_LIST / 1000),
        Charge("S3 GET (job downloads)", downloads, downloads * S3_USD_PER_1000_GET / 1000),
    ]


def compare(ours: Recipe, dataset: Dataset, model: CostModel | None = None) -> Comparison:
    model = model or CostModel()
    classic = replace(CLASSIC, dataset=ours.dataset)
    return Comparison(ours=model.run(ours, dataset), classic=model.run(classic, dataset))


def _usd(value: float) -> str:
    """Dollars: cents above $1, tenths of a cent below (a run's jobs cost cents)."""
    return f"${value:,.2f}" if value >= 1 else f"${value:.3f}"


def _jobs(job: JobCost) -> str:
    """Jobs, and instances per job when more than one (``1x4``)."""
    return f"{job.jobs}x{job.instances}" if job.instances > 1 else str(job.jobs)


def _ratio(classic: float, ours: float) -> str:
    if ours <= 0:
        return "-"
    return f"{classic / ours:.1f}x"


def format_table(comparison: Comparison) -> str:
    """A plain-text report: each job of both recipes, totals, the endpoint, and what the numbers rest on."""
    lines: list[str] = []
    ours, classic = comparison.ours, comparison.classic
    d = ours.dataset
    lines.append(f"Dataset: {d.total:,} photos (train {d.train:,}, valid {d.valid:,}, test {d.test:,})")
    lines.append("")
    header = f"{'recipe':<8} {'step':<17} {'instance':<16} {'jobs':>4} {'backbone imgs':>13} {'hours':>7}"
    header += f" {'on-demand':>10} {'spot':>9}"
    lines.append(header)
    lines.append("-" * len(header))
    for run in (ours, classic):
        for j in run.jobs:
            lines.append(
                f"{run.recipe.name:<8} {j.step:<17} {j.instance_type:<16} {_jobs(j):>4} {j.backbone_images:>13,} "
                f"{j.hours:>7.2f} {_usd(j.on_demand_usd):>10} {_usd(j.spot_usd):>9}"
            )
        lines.append(
            f"{run.recipe.name:<8} {'= one run':<17} {'':<16} {'':>4} {run.backbone_images:>13,} {run.hours:>7.2f} "
            f"{_usd(run.on_demand_usd):>10} {_usd(run.spot_usd):>9}"
        )
        lines.append("")
    for charge in ours.charges:
        usd = _usd(charge.usd)
        lines.append(f"{'ours':<8} {charge.item:<39} {charge.quantity:>13,} {'':>7} {usd:>10} {usd:>9}")
    if ours.charges:
        lines.append(f"{'ours':<8} photos stored in the data bucket: {_usd(ours.storage_usd_per_month)} a month")
        lines.append("")
    r = ours.recipe
    lines.append(
        f"ours: featureCache={str(r.feature_cache).lower()}, useSpot={str(r.use_spot).lower()}, "
        f"{r.tuning_jobs} trials x {r.epochs} epochs on {r.tuning_instance_type}, final {r.training_epochs} epochs "
        f"on {r.training_instance_type}"
    )
    c = classic.recipe
    lines.append(
        f"classic: no cache, on-demand, {c.tuning_jobs} trials x {c.epochs} epochs on {c.tuning_instance_type}, "
        f"final {c.training_epochs} epochs on {c.training_instance_type}"
    )
    lines.append(
        f"One run as billed (ours {'spot' if r.use_spot else 'on-demand'}, classic on-demand): "
        f"{_usd(ours.billed_usd)} vs {_usd(classic.billed_usd)} ({_ratio(classic.billed_usd, ours.billed_usd)} "
        f"cheaper); on-demand alike: {_ratio(classic.on_demand_usd, ours.on_demand_usd)}; backbone passes: "
        f"{_ratio(classic.backbone_images, ours.backbone_images)} fewer"
    )
    lines.append(
        f"Endpoint idle, per month ({HOURS_PER_MONTH:g} h, one instance): ours {ours.recipe.endpoint_instance_type} "
        f"{_usd(ours.endpoint_usd_per_month)}, classic {classic.recipe.endpoint_instance_type} "
        f"{_usd(classic.endpoint_usd_per_month)}"
    )
    if r.dataset == "full":
        lines.append(
            f"Scale: dataset=full, ExtractFeatures on {r.extraction_instances} and Train on {r.training_instances} "
            f"instance(s); totals include the first run's BuildFullManifest and S3 requests"
        )
        lines.append(f"Full dataset: {FULL_NOTE}")
    lines.append("")
    lines.append(f"Throughputs: {MEASURED_EXTRACTION_NOTE}")
    lines.append(f"Prices: {PRICES_NOTE}")
    lines.append(f"Assumptions: {ASSUMPTIONS_NOTE}")
    return "\n".join(lines)
