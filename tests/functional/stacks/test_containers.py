"""One torch everywhere: the installed packages, the endpoint image's requirements and Dockerfile, and the images the
synthesized app runs all name the versions of ``bincount.versions``; shipped code runs on Pythons 3.11 to 3.13."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from bincount import versions
from bincount.local.endpoint import ServedModel
from stacks.app_builder import build_app
from stacks.endpoint_image import DOCKERFILE, PREBUILT_WARNING_ID
from stacks.pipeline.definition import APPLY_DEFAULTS
from tests.support.cdk import ENVIRON, ROOT, Synthesized, cdk_context, synthesized

SERVING_REQUIREMENTS = ROOT / "inference" / "serving-requirements.txt"
DOCKERIGNORE = ROOT / ".dockerignore"
# Standard-library modules removed by Python 3.12 and 3.13 (PEP 594, PEP 632 and the 3.12 removals).
REMOVED_BY_3_13 = frozenset(
    {
        "aifc",
        "asynchat",
        "asyncore",
        "audioop",
        "cgi",
        "cgitb",
        "chunk",
        "crypt",
        "distutils",
        "imghdr",
        "imp",
        "lib2to3",
        "mailcap",
        "msilib",
        "nis",
        "nntplib",
        "ossaudiodev",
        "pipes",
        "smtpd",
        "sndhdr",
        "spwd",
        "sunau",
        "telnetlib",
        "uu",
        "xdrlib",
    }
)
SHIPPED = ("bincount", "training", "inference", "lambda", "stacks", "app.py")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned exactly (==)"
            pins[name.strip().lower()] = version.strip()
    return pins


def _base(version: str) -> str:
    return version.split("+", 1)[0]  # "2.10.0+cu128" -> "2.10.0"


def test_the_serving_requirements_pin_the_training_containers_torch() -> None:
    pins = _pins(SERVING_REQUIREMENTS)
    assert pins["torch"] == versions.TORCH and pins["torchvision"] == versions.TORCHVISION
    assert set(pins) == {"torch", "torchvision", "pillow", "numpy"}


def test_the_tests_run_on_the_pinned_packages() -> None:
    pins = _pins(SERVING_REQUIREMENTS)
    for name, version in pins.items():
        assert _base(metadata.version(name)) == version, name
    import torch
    import torchvision

    assert _base(torch.__version__) == versions.TORCH and _base(torchvision.__version__) == versions.TORCHVISION


def test_the_development_set_up_reads_the_same_file() -> None:
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "-r inference/serving-requirements.txt" in dev.splitlines()
    assert not re.search(r"^(torch|torchvision|pillow|numpy)\b", dev, re.MULTILINE | re.IGNORECASE)


# --- the Dockerfile --------------------------------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions(ROOT / DOCKERFILE)


def test_the_image_is_a_slim_python_for_linux_amd64(dockerfile) -> None:
    froms = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert froms == [f"--platform=linux/amd64 python:{versions.SERVING_PYTHON}-slim-bookworm"]
    runs = " ".join(args for keyword, args in dockerfile if keyword == "RUN")
    assert "apt-get upgrade" in runs  # the base's security patches


def test_the_image_installs_exactly_the_serving_requirements_cpu_builds(dockerfile) -> None:
    copies = [args.split() for keyword, args in dockerfile if keyword == "COPY"]
    assert ["inference/serving-requirements.txt", "/tmp/serving-requirements.txt"] in copies
    installs = [args for keyword, args in dockerfile if keyword == "RUN" and "pip install" in args]
    assert len(installs) == 1
    words = shlex.split(installs[0])
    assert words[words.index("-r") + 1] == "/tmp/serving-requirements.txt"
    assert words[words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    # Nothing else is installed: no package names beside the requirements file.
    named = [w for w in words[words.index("install") + 1 :] if not w.startswith("-") and "/" not in w and w != "&&"]
    assert named[: named.index("rm") if "rm" in named else None] == []


def test_the_entry_point_is_the_command_the_tests_run(dockerfile) -> None:
    entrypoint = json.loads(next(args for keyword, args in dockerfile if keyword == "ENTRYPOINT"))
    command = json.loads(next(args for keyword, args in dockerfile if keyword == "CMD"))
    assert entrypoint + command == ["python", "-m", "bincount", "serve"]
    served = ServedModel.command("/opt/ml/model")
    assert served[0] == sys.executable and served[1:5] == ["-m", "bincount", "serve", "--model-dir"]
    env = " ".join(args for keyword, args in dockerfile if keyword == "ENV")
    assert "PYTHONPATH=/opt/bincount" in env and "BINCOUNT_SERVE_HOST=0.0.0.0" in env


def test_the_image_runs_as_a_non_root_user(dockerfile) -> None:
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert [keyword for keyword, _ in dockerfile].index("USER") > max(
        i for i, (keyword, _) in enumerate(dockerfile) if keyword == "RUN"
    )


def test_the_image_holds_no_secrets(dockerfile) -> None:
    secret = re.compile(r"(secret|password|token|api[_-]?key|access[_-]?key|AKIA[0-9A-Z]{16})", re.IGNORECASE)
    for keyword, args in dockerfile:
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not secret.search(args), (keyword, args)
    assert not any(keyword == "ADD" for keyword, _ in dockerfile)  # no remote fetches into the image


def test_the_build_context_is_only_what_the_image_copies(dockerfile) -> None:
    lines = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = {args.split()[0].rstrip("/") for keyword, args in dockerfile if keyword == "COPY"}
    assert sources <= included
    assert included - sources == {"inference/Dockerfile"}


# --- Python versions ---------------------------------------------------------------------------------------------


def _shipped_files() -> list[Path]:
    files = []
    for name in SHIPPED:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_code_imports_nothing_python_3_13_removed(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        removed = {name.split(".")[0] for name in names} & REMOVED_BY_3_13
        assert not removed, f"{path.name}:{node.lineno} imports {removed}, removed by Python 3.13"


def test_ruff_targets_the_oldest_supported_python() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    oldest = versions.SUPPORTED_PYTHONS[0]
    assert f'target-version = "py{oldest.replace(".", "")}"' in pyproject
    assert f'requires-python = ">={oldest}"' in pyproject
    assert "py" + versions.SUPPORTED_PYTHONS[-1].replace(".", "") == versions.TRAINING_PY


# --- the synthesized app -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


def _defaults(template_json: dict) -> tuple[dict, dict]:
    """ApplyDefaults' defaults and the state machine's DefinitionSubstitutions."""
    machine = next(r for r in template_json["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    asl = json.loads(machine["Properties"]["DefinitionString"])
    return asl["States"][APPLY_DEFAULTS]["Parameters"]["defaults"], machine["Properties"]["DefinitionSubstitutions"]


def test_training_runs_on_the_pinned_training_container(synth: Synthesized) -> None:
    defaults, _ = _defaults(synth.template_json)
    tag = f":{versions.TRAINING_FRAMEWORK}-cpu-{versions.TRAINING_PY}"
    assert defaults["trainingImage"].endswith(tag) and defaults["tuningImage"].endswith(tag)
    assert "/pytorch-training:" in defaults["trainingImage"]
    assert defaults["trainingImage"].split(":")[-1].split("-")[0] == ".".join(versions.TORCH.split(".")[:2])


def test_the_endpoint_runs_the_projects_image_asset(synth: Synthesized) -> None:
    defaults, substitutions = _defaults(synth.template_json)
    assert defaults["inferenceImage"] == "${InferenceImage}"
    image = json.dumps(substitutions["InferenceImage"])
    assert "cdk-hnb659fds-container-assets-" in image
    manifest = json.loads((synth.outdir / f"{synth.stack.stack_name}.assets.json").read_text())
    (asset_hash, asset), *others = manifest["dockerImages"].items()
    assert not others and asset_hash in image
    assert asset["source"]["dockerFile"] == DOCKERFILE and asset["source"]["platform"] == "linux/amd64"
    staged = synth.outdir / asset["source"]["directory"]
    assert (staged / "bincount" / "serving" / "server.py").is_file()
    assert (staged / "inference" / "endpoint_inference.py").is_file()
    assert not (staged / "tests").exists() and not (staged / ".venv").exists()
    # The SageMaker role may pull it: the asset repository is among the ECR statement's resources.
    pulls = [
        statement
        for policy in synth.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "PullContainerImages"
    ]
    assert len(pulls) == 1 and "cdk-hnb659fds-container-assets-" in json.dumps(pulls[0]["Resource"])


def test_the_prebuilt_serving_image_is_used_with_a_warning(tmp_path: Path) -> None:
    app, stack = build_app(context={**cdk_context(), "servingImage": "prebuilt"}, environ=ENVIRON, outdir=str(tmp_path))
    app.synth()
    template = Template.from_stack(stack).to_json()
    _, substitutions = _defaults(template)
    assert (
        substitutions["InferenceImage"]
        == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6-cpu-py312"
    )
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("servingImage 'prebuilt'"))
    assert len(warnings) == 1 and PREBUILT_WARNING_ID in json.dumps(warnings[0].entry.data)
    assert versions.PREBUILT_INFERENCE_END_OF_PATCH in json.dumps(warnings[0].entry.data)
    assert not json.loads((tmp_path / f"{stack.stack_name}.assets.json").read_text()).get("dockerImages")
