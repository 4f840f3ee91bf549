"""The deployment files: docker/Dockerfile, .dockerignore, docker/compose.yaml, the build
scripts and the Kubernetes manifests of docs/deploy.md. No Docker engine is needed: the
Dockerfile is linted with hadolint, the Compose file validated against the Compose
Specification's JSON Schema, and what each promises is read back from it. The build itself
is run by docker/check-package.sh, the last step of .ci/run."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from adapters.settings import OTHER_VARIABLES, Settings, env_name
from tests.conftest import ROOT, require
from tests.docker_support import (
    compose_schema,
    docker_ignored,
    dockerfile_instructions,
    dockerignore_patterns,
    fenced_blocks,
    yaml_documents,
)
from tests.test_ctl_serve import free_port

DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
DEPLOY = ROOT / "docs" / "deploy.md"
SCRIPTS = ("build-wheel.sh", "install-wheel.sh", "check-package.sh")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SETTINGS_VARIABLES = {env_name(name) for name in Settings.model_fields} | OTHER_VARIABLES


def tool(name: str) -> str:
    """A linter the dev extras install next to this Python (or one on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    require(found, f"{name} is not installed: install the dev extras (pip install -e '.[dev]')")
    assert found
    return found


def final_stage(keyword: str) -> list[str]:
    instructions = dockerfile_instructions(DOCKERFILE)
    last = max(i.stage for i in instructions)
    return [i.arguments for i in instructions if i.stage == last and i.keyword == keyword]


def only(values: list[str]) -> str:
    assert len(values) == 1, values
    return values[0]


def assert_known_settings(variables: Iterable[str], where: str) -> None:
    """`engine` refuses to start on an unknown HEADRACE_* variable: every one set must exist."""
    unknown = sorted(v for v in variables if v.startswith("HEADRACE_") and v not in SETTINGS_VARIABLES)
    assert not unknown, f"{where} sets unknown settings {unknown}"


# --- Dockerfile -----------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_builder_and_runtime_share_the_python_base_the_wheel_is_built_for():
    instructions = dockerfile_instructions(DOCKERFILE)
    froms = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    base = only([i.arguments for i in instructions if i.keyword == "ARG" and i.stage == 0])
    assert base == "PYTHON_IMAGE=python:3.11-slim-bookworm"
    assert PROJECT["requires-python"] == ">=3.11"


def test_the_stages_run_the_scripts_ci_runs():
    instructions = dockerfile_instructions(DOCKERFILE)
    builder = " ".join(i.arguments for i in instructions if i.stage == 1 and i.keyword == "RUN")
    runtime = " ".join(final_stage("RUN"))
    assert "docker/build-wheel.sh /dist" in builder
    assert "from=builder,source=/dist" in runtime and "source=docker/install-wheel.sh" in runtime
    assert "install-wheel.sh /tmp/dist" in runtime
    check = (DOCKER / "check-package.sh").read_text()
    assert "docker/build-wheel.sh" in check and "docker/install-wheel.sh" in check
    assert "bash docker/check-package.sh" in (ROOT / ".ci/run").read_text().splitlines()


def test_the_runtime_stage_runs_engine_serve_as_a_non_root_user():
    user = only(final_stage("USER"))
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0", user  # numeric: runAsNonRoot can check it
    assert only(final_stage("VOLUME")) == '["/graphs", "/state"]'
    assert json.loads(only(final_stage("ENTRYPOINT"))) == ["engine"]
    assert json.loads(only(final_stage("CMD"))) == ["serve", "/graphs"]
    env = " ".join(final_stage("ENV"))
    assert "HEADRACE_STATE_DIR=/state" in env and "HEADRACE_CONTROL_ADDRESS=0.0.0.0:50051" in env
    assert_known_settings([word.split("=")[0] for word in env.split()], "the Dockerfile's ENV")


def test_every_variable_a_stage_uses_is_declared_in_that_stage():
    """An ARG declared before the first FROM is seen by FROM lines only: a stage that uses it
    elsewhere must declare it again, or it expands to nothing."""
    instructions = dockerfile_instructions(DOCKERFILE)
    for stage in sorted({i.stage for i in instructions} - {0}):
        declared: set[str] = set()
        for i in (i for i in instructions if i.stage == stage):
            if i.keyword in ("ARG", "ENV"):
                declared |= {word.split("=")[0] for word in i.arguments.split() if re.fullmatch(r"\w+(=.*)?", word)}
            elif i.keyword not in ("FROM", "RUN", "HEALTHCHECK"):  # RUN and HEALTHCHECK: the shell expands
                used = set(re.findall(r"\$\{?(\w+)", i.arguments))
                assert used <= declared, f"stage {stage}: {i.keyword} uses {sorted(used - declared)} undeclared"


def test_the_image_is_labelled_with_the_projects_metadata():
    labels = " ".join(final_stage("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert f'org.opencontainers.image.licenses="{PROJECT["license"]["text"]}"' in labels
    assert f"VERSION={PROJECT['version']}" in final_stage("ARG")


def test_the_gpu_build_argument_adds_the_gpu_extra():
    assert "gpu=false" in final_stage("ARG")
    assert "gpu" in PROJECT["optional-dependencies"]
    install = " ".join(final_stage("RUN"))
    assert 'if [ "$gpu" = true ]; then extras=gpu; fi' in install and '"$extras"' in install


def healthcheck_command() -> list[str]:
    options, _, command = only(final_stage("HEALTHCHECK")).partition(" CMD ")
    assert "--timeout=" in options and "--interval=" in options
    argv: list[str] = json.loads(command)
    assert argv[:2] == ["/bin/sh", "-c"] and "engine ctl" in argv[2] and argv[2].rstrip().endswith("|| exit 1")
    return argv


def test_the_health_check_asks_a_running_engine_without_the_token(tmp_path):
    """The HEALTHCHECK command as written, with the image's environment (control plane on
    0.0.0.0, a token set for the engine only): exit 0 while SERVING, 1 (never Docker's
    reserved 2) when no engine answers."""
    argv = healthcheck_command()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "engine"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m adapters.cli.main "$@"\n')
    shim.chmod(0o755)
    (tmp_path / "graphs").mkdir()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    base.update(PYTHONPATH=str(ROOT), PATH=f"{bin_dir}{os.pathsep}{base.get('PATH', '')}")
    serve = subprocess.Popen([sys.executable, "-m", "adapters.cli.main", "serve", "graphs"], cwd=tmp_path,
                             env=dict(base, HEADRACE_CONTROL_ADDRESS=f"127.0.0.1:{port}",
                                      HEADRACE_CONTROL_TOKEN="t0ken", HEADRACE_STATE_DIR=str(tmp_path / "state")),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    container_env = dict(base, HEADRACE_CONTROL_ADDRESS=f"0.0.0.0:{port}")  # as the image sets it

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=tmp_path, env=container_env, capture_output=True, text=True, timeout=60)

    try:
        deadline = time.monotonic() + 30
        while (result := check()).returncode != 0:
            assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
            assert time.monotonic() < deadline, result.stdout + result.stderr
            time.sleep(0.2)
        assert result.stdout.strip() == "SERVING"
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    gone = check()
    assert gone.returncode == 1 and "cannot reach the control plane" in gone.stderr


# --- .dockerignore --------------------------------------------------------------------------

def test_dockerignore_leaves_out_local_state_and_build_outputs():
    patterns = dockerignore_patterns(ROOT / ".dockerignore")
    for path in (".git/config", ".venv/bin/python", "build/lib/engine/plan.py", "dist/headrace-0.1.0.whl",
                 "engine/plan.cpython-311-x86_64-linux-gnu.so", "abc__mypyc.cpython-311-x86_64-linux-gnu.so",
                 "engine/__pycache__/plan.cpython-311.pyc", "headrace.egg-info/PKG-INFO",
                 "bench/.peers-venv/bin/python", "docker/.env", "state/edges/data.mdb", "out/orders.jsonl"):
        assert docker_ignored(patterns, path), f".dockerignore lets {path} into the build context"


def test_dockerignore_keeps_every_source_file_the_build_needs():
    patterns = dockerignore_patterns(ROOT / ".dockerignore")
    needed = [ROOT / name for name in ("pyproject.toml", "setup.py", "README.md")]
    for folder in ("engine", "loader", "adapters", "migrations", "docker", "graphs", "schema"):
        needed += [p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in (".so", ".pyc")]
    left_out = [str(p.relative_to(ROOT)) for p in needed if docker_ignored(patterns, p.relative_to(ROOT).as_posix())]
    assert not left_out, left_out


# --- compose.yaml ---------------------------------------------------------------------------

def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return document


def test_compose_file_is_valid_against_the_compose_specification():
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load_compose())]
    assert errors == []


def test_the_compose_schema_check_rejects_a_broken_file():
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = load_compose()
    broken["services"]["engine"]["portz"] = broken["services"]["engine"].pop("ports")
    assert list(validator.iter_errors(broken))
    broken = load_compose()
    broken["services"]["engine"]["depends_on"] = 7
    assert list(validator.iter_errors(broken))


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Short-syntax volumes as {target: (source, read_only)}."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        found[target] = (source, bool(mode) and "ro" in mode[0].split(","))
    return found


def test_compose_runs_the_engine_on_the_git_sync_checkout():
    compose = load_compose()
    git_sync, engine = compose["services"]["git-sync"], compose["services"]["engine"]
    assert git_sync["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
    sync_env = git_sync["environment"]
    root, link = sync_env["GITSYNC_ROOT"], sync_env["GITSYNC_LINK"]
    volume, read_only = mounts(git_sync)[root]
    assert volume in compose["volumes"] and not read_only
    engine_mount = [target for target, (source, ro) in mounts(engine).items() if source == volume]
    assert engine_mount == [root] and mounts(engine)[root][1], "the engine shares git-sync's volume, read-only"
    command = engine["command"]
    assert command[0] == "serve" and command[1].startswith(f"{root}/{link}/")
    assert engine["depends_on"]["git-sync"]["condition"] == "service_healthy"
    assert f"{root}/{link}" in git_sync["healthcheck"]["test"]


def test_compose_keeps_state_and_publishes_the_control_port_on_loopback_only():
    compose = load_compose()
    engine = compose["services"]["engine"]
    source, read_only = mounts(engine)["/state"]
    assert source in compose["volumes"] and not read_only
    assert engine["ports"] == ["127.0.0.1:50051:50051"]
    assert engine["environment"]["HEADRACE_CONTROL_TOKEN"].startswith("${HEADRACE_CONTROL_TOKEN:?")
    assert_known_settings(engine["environment"], "docker/compose.yaml")
    assert (COMPOSE.parent / engine["build"]["context"] / engine["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert engine["image"] == f"headrace:{PROJECT['version']}"
    assert "CHANGE" in COMPOSE.read_text()


# --- the scripts ----------------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_build_scripts_pass_shellcheck(script):
    result = subprocess.run([tool("shellcheck"), str(DOCKER / script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_wheel_refuses_a_folder_without_exactly_one_wheel(tmp_path):
    result = subprocess.run(["bash", str(DOCKER / "install-wheel.sh"), str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "expected one headrace wheel" in result.stderr


# --- docs/deploy.md -------------------------------------------------------------------------

def manifests() -> list[dict[str, Any]]:
    return [document for block in fenced_blocks(DEPLOY, "yaml") for document in yaml_documents(block)]


def deployment() -> dict[str, Any]:
    found = [m for m in manifests() if m.get("kind") == "Deployment"]
    assert len(found) == 1
    return found[0]


def test_every_yaml_block_of_the_deploy_guide_parses():
    blocks = fenced_blocks(DEPLOY, "yaml")
    assert len(blocks) >= 4
    for block in blocks:
        assert yaml_documents(block), block


def test_the_deployment_probes_the_grpc_health_service():
    spec = deployment()["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    engine = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "engine")
    port = only([p["containerPort"] for p in engine["ports"]])
    assert port == 50051
    for probe in ("readinessProbe", "livenessProbe"):
        assert engine[probe]["grpc"]["port"] == port, probe
    exec_probes = [m["readinessProbe"]["exec"]["command"] for m in manifests() if "readinessProbe" in m]
    assert exec_probes and exec_probes[0][:2] == ["engine", "ctl"] and exec_probes[0][-1] == "health"


def test_the_deployment_reads_the_token_from_a_secret_and_sets_resources():
    template = deployment()["spec"]["template"]["spec"]
    engine = next(c for c in template["containers"] if c["name"] == "engine")
    env = {e["name"]: e for e in engine["env"]}
    assert_known_settings(env, "the Deployment")
    secret = env["HEADRACE_CONTROL_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert f"kubectl create secret generic {secret['name']} --from-literal={secret['key']}=" in DEPLOY.read_text()
    for container in (engine, *template["initContainers"]):
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    claims = {m["metadata"]["name"] for m in manifests() if m.get("kind") == "PersistentVolumeClaim"}
    state = next(v for v in template["volumes"] if v["name"] == "state")
    assert state["persistentVolumeClaim"]["claimName"] in claims
    assert {"name": "state", "mountPath": "/state"} in engine["volumeMounts"]


def test_the_deployment_serves_the_git_sync_link():
    template = deployment()["spec"]["template"]["spec"]
    git_sync = only([c for c in template["initContainers"] if c["name"] == "git-sync"])
    assert git_sync["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
    assert git_sync["restartPolicy"] == "Always"  # a sidecar: keeps syncing
    args = dict(arg.removeprefix("--").split("=", 1) for arg in git_sync["args"])
    link = f"{args['root']}/{args['link']}"
    assert git_sync["startupProbe"]["exec"]["command"][-1] == link
    engine = next(c for c in template["containers"] if c["name"] == "engine")
    assert engine["args"][0] == "serve" and engine["args"][1].startswith(link + "/")
    assert {"name": "git", "mountPath": args["root"], "readOnly": True} in engine["volumeMounts"]
    assert template["securityContext"]["runAsNonRoot"] is True


def test_the_deploy_guide_links_resolve_and_the_readme_links_it():
    text = DEPLOY.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (DEPLOY.parent / target).exists(), target
    assert "(docs/deploy.md)" in (ROOT / "README.md").read_text()
