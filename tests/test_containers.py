"""The container files: both Dockerfiles, the compose files, docker/setup.sh, .env, and the
Kubernetes example of docs/deployment.md. No Docker engine is needed: the files are parsed and
checked against each other, against models.yaml and against the CLI."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.specifiers import SpecifierSet

from vlm_router.api.app import create_app
from vlm_router.cli import parser as cli_parser
from vlm_router.config import load_config, parse_config

from .conftest import ServerThread

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = ("docker/Dockerfile", "docker/Dockerfile.gpu")
SETUP = ROOT / "docker" / "setup.sh"
ORIGINAL = ("VLM_MODEL_NAME", "VLM_COMPRESSION_WEIGHT_FORMAT", "VLM_DEVICE", "VLM_SERVICE_PORT", "VLM_SEED")
PROXIES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
CPU_WHEELS = "--extra-index-url https://download.pytorch.org/whl/cpu"
SHELLS = [shell for shell in ("bash", "sh") if shutil.which(shell)]


# --- Dockerfiles ---------------------------------------------------------------------------------


def parse(dockerfile: str) -> DockerfileParser:
    # From a file object: given a path, DockerfileParser takes any name but "Dockerfile" for a folder.
    return DockerfileParser(fileobj=io.BytesIO((ROOT / dockerfile).read_bytes()))


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    parsed = parse(dockerfile)
    return [(item["instruction"], item["value"]) for item in parsed.structure if item["instruction"] != "COMMENT"]


def stages(dockerfile: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each stage by its name (or number): what it starts FROM, and its instructions."""
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for name, value in instructions(dockerfile):
        if name == "FROM":
            words = value.split()
            stage = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            found[stage] = (words[0], [])
        else:
            found[list(found)[-1]][1].append((name, value))
    return found


def chain(dockerfile: str, target: str = "serve") -> list[tuple[str, str]]:
    """The instructions that make the image `target`: its parent stages' first, from the base image's FROM on."""
    every = stages(dockerfile)
    base, steps = every[target]
    return (chain(dockerfile, base) if base in every else [("FROM", base)]) + steps


def values(dockerfile: str, instruction: str, target: str = "serve") -> list[str]:
    """The values of `instruction` in the image `target` (compose.yaml builds `serve`)."""
    return [value for name, value in chain(dockerfile, target) if name == instruction]


def envs(dockerfile: str, target: str = "serve") -> dict[str, str]:
    """The ENV the image `target` has, later stages over earlier ones."""
    found: dict[str, str] = {}
    for value in values(dockerfile, "ENV", target):
        found.update(dict(pair.split("=", 1) for pair in shlex.split(value.replace("\\\n", " "))))
    return found


def exec_form(value: str) -> list[str]:
    assert value.startswith("["), f"not in exec (JSON) form: {value}"
    return json.loads(value)


def healthcheck_command(dockerfile: str) -> list[str]:
    (value,) = values(dockerfile, "HEALTHCHECK")
    return exec_form(value[value.index("CMD") + 3 :].strip())


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def models_yaml() -> dict:
    return yaml.safe_load((ROOT / "models.yaml").read_text())


# The Python each base image brings.
BASE_PYTHON = {"python:3.11-slim": "3.11", "ubuntu:24.04": "3.12"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_base_brings_a_python_the_project_supports(dockerfile):
    name, base = chain(dockerfile)[0]
    assert name == "FROM"
    requires = pyproject()["project"]["requires-python"]
    assert SpecifierSet(requires).contains(BASE_PYTHON[base])


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_copies_what_exists_and_every_package(dockerfile):
    copied = []
    for name, value in instructions(dockerfile):
        if name in ("COPY", "ADD") and "--from=" not in value:  # from the build context, not another stage
            parts = [part for part in (json.loads(value) if value.startswith("[") else shlex.split(value)) if not part.startswith("--")]
            copied += parts[:-1]
    assert copied
    missing = [source for source in copied if not (ROOT / source).exists()]
    assert not missing, f"{dockerfile} copies what the build context lacks: {missing}"
    for folder in package_folders():
        assert folder in copied, f"{dockerfile} does not copy the package folder {folder}"


def package_folders() -> set[str]:
    """The top-level folders the installed packages come from, `package-dir` mappings followed."""
    setuptools = pyproject()["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    folders = set()
    for package in setuptools["packages"]:
        root = next((folder for name, folder in mapped.items() if package == name or package.startswith(name + ".")), package)
        folders.add(root.split("/")[0].split(".")[0])
    return folders


def test_every_package_folder_is_installed():
    """Each folder with an `__init__.py` under the package folders is a listed package, so a fresh install has it."""
    setuptools = pyproject()["tool"]["setuptools"]
    reverse = {folder: name for name, folder in setuptools.get("package-dir", {}).items()}
    found = set()
    for folder in package_folders():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join([reverse.get(parts[0], parts[0]), *parts[1:]]))
    assert found == set(setuptools["packages"])
    assert "plugins" not in found, "the built-in families install under vlm_router, not as a top-level `plugins`"


def test_cpu_serving_image_installs_as_the_readme_quick_start_does_with_no_torch():
    dockerfile = "docker/Dockerfile"
    quick_start = re.search(r"pip install -e \. && (pip install --no-deps '[^']+')", (ROOT / "README.md").read_text()).group(1)
    (install,) = [value for value in values(dockerfile, "RUN") if "pip install" in value]
    assert "pip install /wheels/*.whl" in install and quick_start in install and "find_spec('torch')" in install
    (wheel,) = [value for value in values(dockerfile, "RUN", "wheel") if "pip wheel" in value]
    assert "--no-deps" in wheel, "the project's wheel alone: its dependencies install in the image"
    copied = [value.split()[0] for value in values(dockerfile, "COPY", "wheel")]
    assert {"vlm_router", "plugins", "pyproject.toml"} <= set(copied)
    assert not [value for value in values(dockerfile, "COPY") if value.split()[0] in ("vlm_router", "plugins")], "no sources in the image"


def test_cpu_convert_image_adds_torch_from_the_cpu_index_and_refuses_gpu_libraries():
    (install,) = [value for value in values("docker/Dockerfile", "RUN", "convert") if "[convert]" in value]
    assert CPU_WHEELS in install and CPU_WHEELS in (ROOT / "README.md").read_text()
    assert "grep -iE '^(nvidia|triton)'" in install and "exit 1" in install
    order = list(stages("docker/Dockerfile"))
    assert order.index("serve") < order.index("convert"), "Docker's classic builder builds every stage before its target"
    assert service("compose.yaml")["build"]["target"] == "serve"
    assert compose("compose.convert.yaml")["services"]["vlm-router"]["build"] == {"target": "convert"}


def test_gpu_dockerfile_installs_as_the_readme_does():
    dockerfile = "docker/Dockerfile.gpu"
    steps = instructions(dockerfile)
    installs = [i for i, (name, value) in enumerate(steps) if name == "RUN" and "pip install" in value]
    assert len(installs) == 1, f"{dockerfile}: one pip install expected"
    command = steps[installs[0]][1]
    assert "'.[convert,structured]'" in command and CPU_WHEELS in command
    sources = ("vlm_router", "plugins", "pyproject.toml")
    sources_copied_at = max(i for i, (name, value) in enumerate(steps) if name == "COPY" and value.split()[0] in sources)
    assert sources_copied_at < installs[0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_runs_the_server_as_a_user_that_is_not_root(dockerfile):
    user = values(dockerfile, "USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    for stage, (_, steps) in stages(dockerfile).items():  # every image ends as that user
        users = [value for name, value in steps if name == "USER"]
        assert not users or users[-1] == user, f"{dockerfile}: stage {stage} ends as {users[-1]}"
    (creates,) = [value for value in values(dockerfile, "RUN") if "useradd" in value]
    created = re.search(r"--uid (\d+) .*\b(\w+)$", creates)
    assert user.split(":")[0] in created.groups(), f"USER {user} is not the user that {creates!r} creates"

    env = envs(dockerfile)
    assert env["VLM_HOST"] == "0.0.0.0" and env["VLM_SERVICE_PORT"] == "9764"
    assert "9764" in " ".join(values(dockerfile, "EXPOSE")).split()

    (cmd,) = values(dockerfile, "CMD")
    argv = exec_form(cmd)
    assert argv[:2] == ["vlm-router", "serve"]
    args = cli_parser().parse_args(argv[1:])
    assert any(f"models.yaml {args.config}" in value for value in values(dockerfile, "COPY"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_has_the_demo_model_and_keeps_the_caches_in_a_volume(dockerfile):
    config = models_yaml()
    demo = next(model for model in config["models"] if model["name"] == config["server"]["default_model"])
    built = [cli_parser().parse_args(shlex.split(value)[1:]).out for value in values(dockerfile, "RUN") if "make-tiny" in value]
    copied = [value.split()[1] for value in values(dockerfile, "COPY") if value.split()[0] == demo["path"]]
    assert built + copied == [f"/app/{demo['path']}"], "the demo, built or as the repository ships it"

    cache = f"/app/{config['server']['cache_dir']}"
    assert cache == "/app/ov-model"
    assert any(cache in exec_form(value) for value in values(dockerfile, "VOLUME"))
    assert any(f"chown -R vlm:vlm {cache}" in value for value in values(dockerfile, "RUN"))
    assert envs(dockerfile)["HF_HOME"].startswith(cache + "/"), "downloads stay on the volume"


def test_gpu_image_has_the_intel_runtime_the_groups_and_gpu_device():
    dockerfile = "docker/Dockerfile.gpu"
    installs = " ".join(value for value in values(dockerfile, "RUN") if "apt-get install" in value).split()
    assert {"intel-opencl-icd", "ocl-icd-libopencl1"} <= set(installs)
    (user,) = [value for value in values(dockerfile, "RUN") if "useradd" in value]
    groups = re.search(r"--groups (\S+)", user).group(1).split(",")
    assert {"video", "render"} <= set(groups)
    assert parse(dockerfile).envs["VLM_DEVICE"] == "GPU"
    assert parse("docker/Dockerfile").envs.get("VLM_DEVICE") in (None, "CPU")


def run_healthcheck(command: list[str], port: int) -> int:
    """Run a health check command with this interpreter; a dead proxy is set, which it must not use."""
    assert command[0] == "python"
    env = {"VLM_SERVICE_PORT": str(port), "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "no_proxy": ""}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False).returncode


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_healthcheck_asks_ready_directly_and_fails_until_ready_or_when_nothing_answers(dockerfile, families, tmp_path):
    """Healthy means ready: a server whose eager model is not loaded (here it cannot be) fails the check, though its /health answers."""
    command = healthcheck_command(dockerfile)
    lazy = parse_config({"models": [{"name": "m", "path": str(tmp_path / "missing")}]})
    with ServerThread(create_app(lazy, families)) as server:
        assert run_healthcheck(command, server.port) == 0
    eager = parse_config({"models": [{"name": "m", "path": str(tmp_path / "missing"), "load": "eager"}]})
    with ServerThread(create_app(eager, families)) as server:
        assert httpx.get(server.url + "/health").status_code == 200
        assert run_healthcheck(command, server.port) != 0
    assert run_healthcheck(command, server.port) != 0


# --- compose -------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `${VAR?error}`."""

    def value(match: re.Match) -> str:
        name, operator, argument = match.groups()
        present = name in env and (env[name] != "" or not (operator or "").startswith(":"))
        if present:
            return env[name]
        if operator and operator.endswith("?"):
            raise KeyError(f"{name}: {argument}")
        return argument if operator else ""

    return _VARIABLE.sub(value, text)


def interpolated_values(node, env: dict[str, str]):
    """As compose does it: in the parsed file's string values, not in its keys."""
    if isinstance(node, dict):
        return {key: interpolated_values(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated_values(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def compose(name: str, env: dict[str, str] | None = None) -> dict:
    return interpolated_values(yaml.safe_load((ROOT / name).read_text()), env or {})


def service(name: str, env: dict[str, str] | None = None) -> dict:
    return compose(name, env)["services"]["vlm-router"]


def interpolated(name: str) -> set[str]:
    text = (ROOT / name).read_text()
    assert not re.search(r"\$(?![{$])", text), f"{name}: use ${{VAR}}, which these tests read"
    return {match.group(1) for match in _VARIABLE.finditer(text)}


def env_file() -> tuple[dict[str, str], set[str]]:
    """`.env`'s active assignments, and every variable it names (commented-out lines too)."""
    active, named = {}, set()
    for line in (ROOT / ".env").read_text().splitlines():
        if match := re.match(r"^(#\s*)?([A-Za-z_]\w*)=(.*)$", line.strip()):
            named.add(match.group(2))
            if not match.group(1):
                active[match.group(2)] = match.group(3)
    return active, named


def test_compose_files_build_existing_dockerfiles():
    base = service("compose.yaml")
    context = ROOT / base["build"]["context"]
    assert (context / base["build"]["dockerfile"]).is_file()
    gpu = service("compose.gpu.yaml", {"RENDER_GID": "992"})
    assert "context" not in gpu["build"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu" and (context / gpu["build"]["dockerfile"]).is_file()


def test_compose_interpolates_only_variables_that_setup_sh_and_env_define():
    exported = set(re.findall(r"\bexport\s+(\w+)", SETUP.read_text()))
    _, named = env_file()
    used = interpolated("compose.yaml") | interpolated("compose.gpu.yaml")
    assert used <= exported, f"not exported by docker/setup.sh: {used - exported}"
    assert used <= named, f"not in .env: {used - named}"
    passed = set(service("compose.yaml")["environment"])
    assert named <= used | passed | {"COMPOSE_FILE"}, f".env names what compose never reads: {named - used - passed}"
    assert exported <= used | passed | {"COMPOSE_FILE"}, f"setup.sh exports what compose never reads: {exported - used - passed}"


def test_compose_defaults_keep_the_original_variables_port_and_proxies():
    base = service("compose.yaml")
    assert base["image"] == "vlm-router:latest"
    assert base["ports"] == ["127.0.0.1:9764:9764"], "published on this machine only"
    assert service("compose.yaml", {"VLM_SERVICE_PORT": "8000"})["ports"] == ["127.0.0.1:8000:8000"]
    opened = service("compose.yaml", {"VLM_HOST_BIND": "0.0.0.0"})
    assert opened["ports"] == ["0.0.0.0:9764:9764"] and opened["environment"]["VLM_HOST_BIND"] == "0.0.0.0", "and the server knows it"
    env = base["environment"]
    assert set(ORIGINAL) | set(PROXIES) <= set(env)
    assert (env["VLM_DEVICE"], env["VLM_COMPRESSION_WEIGHT_FORMAT"], env["VLM_SERVICE_PORT"]) == ("CPU", "int8", "9764")
    # Without a value, compose passes the variable only when it is set, so models.yaml's default model stays.
    assert env["VLM_MODEL_NAME"] is None and env["VLM_SEED"] is None
    assert set(base["build"]["args"]) == set(PROXIES)
    assert "ov-model:/app/ov-model" in base["volumes"] and "ov-model" in compose("compose.yaml")["volumes"]
    assert base["healthcheck"]["test"][0] == "CMD" and base["restart"] == "unless-stopped"


def test_compose_gpu_variant_passes_the_gpu_in():
    gpu = service("compose.gpu.yaml", {"RENDER_GID": "992"})
    assert gpu["image"] == "vlm-router:latest-gpu"
    assert "/dev/dri:/dev/dri" in gpu["devices"]
    assert gpu["group_add"] == ["video", "992"]
    assert gpu["environment"]["VLM_DEVICE"] == "GPU"
    assert service("compose.gpu.yaml", {"RENDER_GID": "992", "VLM_DEVICE": "GPU.1"})["environment"]["VLM_DEVICE"] == "GPU.1"
    with pytest.raises(KeyError, match="RENDER_GID"):
        service("compose.gpu.yaml")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_compose_health_check_is_the_images(dockerfile):
    check = service("compose.yaml")["healthcheck"]
    assert check["test"][1:] == healthcheck_command(dockerfile)
    (value,) = values(dockerfile, "HEALTHCHECK")
    options = dict(re.findall(r"--([\w-]+)=(\S+)", value[: value.index("CMD")]))
    assert {key.replace("-", "_"): value for key, value in options.items()} == {key: str(value) for key, value in check.items() if key != "test"}
    assert "healthcheck" not in service("compose.gpu.yaml", {"RENDER_GID": "992"})


def test_compose_mounts_exist_commented_ones_included():
    text = (ROOT / "compose.yaml").read_text()
    sources = re.findall(r"^\s*#?\s*-\s*(\.{1,2}/[^:\s]+):", text, re.MULTILINE)
    assert "./models.yaml" in sources
    assert all((ROOT / source).exists() for source in sources)


# --- .env and setup.sh ---------------------------------------------------------------------------


def test_env_file_values_let_the_server_start():
    active, named = env_file()
    assert set(ORIGINAL) | {"REGISTRY_URL", "PROJECT_NAME", "TAG", "RENDER_GID", "COMPOSE_FILE"} <= named
    vlm = {name: value for name, value in active.items() if name.startswith("VLM_")}
    assert all(vlm.values()), f"empty VLM_* lines in .env: {[n for n, v in vlm.items() if not v]}"
    config = load_config(ROOT / "models.yaml", vlm)
    assert config.server.port == int(active["VLM_SERVICE_PORT"]) == 9764
    assert (active["TAG"], active["REGISTRY_URL"], active["PROJECT_NAME"]) == ("latest", "", "")


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_sh_is_valid_shell(shell):
    result = subprocess.run([shell, "-n", str(SETUP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def sourced(shell: str, before: str = "", env: dict[str, str] | None = None) -> dict[str, str]:
    """The exported environment after `before; . docker/setup.sh` in a shell with only PATH and `env`."""
    script = f"{before}\n. docker/setup.sh || exit 9\nenv -0"
    env = {"PATH": "/usr/bin:/bin", **(env or {})}
    result = subprocess.run([shell, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    exported = dict(item.split("=", 1) for item in result.stdout.split("\0") if item)
    for shells_own in ("PWD", "OLDPWD", "SHLVL", "_"):
        exported.pop(shells_own, None)
    return exported


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_sh_exports_the_defaults(shell):
    exported = sourced(shell)
    assert exported == {
        "PATH": "/usr/bin:/bin",
        "VLM_DEVICE": "CPU",
        "VLM_COMPRESSION_WEIGHT_FORMAT": "int8",
        "VLM_SERVICE_PORT": "9764",
        "VLM_HOST_BIND": "127.0.0.1",
        "TAG": "latest",
    }
    load_config(ROOT / "models.yaml", exported)


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_sh_keeps_what_is_set_and_exports_shell_variables(shell):
    given = {
        "VLM_DEVICE": "NPU",
        "VLM_COMPRESSION_WEIGHT_FORMAT": "fp16",
        "VLM_SERVICE_PORT": "8000",
        "VLM_MODEL_NAME": "Qwen/Qwen2-VL-2B-Instruct",
        "TAG": "1.0",
        "HTTPS_PROXY": "http://proxy.example.com:3128",
        "NO_PROXY": "localhost",
    }
    # Set in the shell without `export`: setup.sh exports them, so that compose sees them.
    exported = sourced(shell, "VLM_SEED=7; http_proxy=http://proxy.example.com:3128; REGISTRY_URL=registry.example.com", given)
    assert {name: exported.get(name) for name in given} == given
    assert exported["VLM_SEED"] == "7" and exported["http_proxy"] == "http://proxy.example.com:3128"
    assert exported["REGISTRY_URL"] == "registry.example.com/" and "PROJECT_NAME" not in exported
    assert "COMPOSE_FILE" not in exported
    config = load_config(ROOT / "models.yaml", exported)
    assert config.server.port == 8000 and config.server.default_model == "Qwen/Qwen2-VL-2B-Instruct"


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_sh_unsets_empty_values(shell):
    exported = sourced(shell, env={"VLM_SEED": "", "VLM_MODEL_NAME": ""})
    assert not {"VLM_SEED", "VLM_MODEL_NAME"} & set(exported)


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_sh_with_a_gpu_picks_the_gpu_compose_file_and_int4(shell):
    exported = sourced(shell, "export VLM_DEVICE=GPU", {"RENDER_GID": "992", "PROJECT_NAME": "team/"})
    assert exported["COMPOSE_FILE"] == "compose.yaml:compose.gpu.yaml"
    assert all((ROOT / name).is_file() for name in exported["COMPOSE_FILE"].split(":"))
    assert (exported["VLM_DEVICE"], exported["VLM_COMPRESSION_WEIGHT_FORMAT"], exported["RENDER_GID"]) == ("GPU", "int4", "992")
    gpu = service("compose.gpu.yaml", exported)
    assert gpu["image"] == "team/vlm-router:latest-gpu" and gpu["environment"]["VLM_DEVICE"] == "GPU"
    kept = sourced(shell, "export VLM_DEVICE=GPU.1", {"VLM_COMPRESSION_WEIGHT_FORMAT": "int8", "COMPOSE_FILE": "compose.yaml"})
    assert (kept["VLM_COMPRESSION_WEIGHT_FORMAT"], kept["COMPOSE_FILE"]) == ("int8", "compose.yaml")
    load_config(ROOT / "models.yaml", exported)


def test_documented_setup_sh_commands_keep_their_variables():
    # bash forgets `VAR=value . script` assignments after the script, exports included: documented
    # commands must `export` first.
    lines = [
        line.lstrip("# ")
        for path in ("README.md", "docs/docker.md", "docs/deployment.md", "docker/setup.sh")
        for line in (ROOT / path).read_text().splitlines()
        if ". docker/setup.sh" in line
    ]
    assert len(lines) >= 4
    checked = 0
    for line in lines:
        assert not re.search(r"\w+=\S*\s+\.\s+docker/setup\.sh", line), line
        setup = line.split(" && docker ")[0]
        exported = sourced("bash", setup.replace(". docker/setup.sh", ":"))
        for name, value in re.findall(r"(\w+)=(\S+)", setup):
            assert exported[name].rstrip("/") == value, line
            checked += 1
    assert checked, f"no documented command sets a variable before sourcing setup.sh: {lines}"


def test_image_name_from_setup_sh():
    exported = sourced(SHELLS[0], env={"REGISTRY_URL": "registry.example.com", "PROJECT_NAME": "team", "TAG": "1.0"})
    assert service("compose.yaml", exported)["image"] == "registry.example.com/team/vlm-router:1.0"
    assert service("compose.gpu.yaml", {**exported, "RENDER_GID": "992"})["image"] == "registry.example.com/team/vlm-router:1.0-gpu"


# --- docs/deployment.md --------------------------------------------------------------------------

DEPLOYMENT = ROOT / "docs" / "deployment.md"
METRICS = {
    "vlm_router_requests_total",
    "vlm_router_time_to_first_token_seconds",
    "vlm_router_time_per_output_token_seconds",
    "vlm_router_e2e_request_latency_seconds",
    "vlm_router_vision_encoding_seconds",
    "vlm_router_model_load_seconds",
    "vlm_router_prompt_tokens_total",
    "vlm_router_generation_tokens_total",
    "vlm_router_worker_restarts_total",
    "vlm_router_num_requests_running",
    "vlm_router_num_requests_waiting",
    "vlm_router_model_loaded",
}


def yaml_documents() -> list:
    blocks = re.findall(r"^([ \t]*)```yaml\n(.*?)^\1```", DEPLOYMENT.read_text(), re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 4
    return [document for _, block in blocks for document in yaml.safe_load_all(textwrap.dedent(block)) if document is not None]


def kubernetes_objects() -> dict[str, dict]:
    objects = [document for document in yaml_documents() if isinstance(document, dict) and {"apiVersion", "kind"} & set(document)]
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), obj
    kinds = {obj["kind"]: obj for obj in objects}
    assert len(kinds) == len(objects), "one object of each kind expected"
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Job", "PersistentVolumeClaim"} <= set(kinds)
    return kinds


def test_deployment_doc_yaml_parses_into_complete_kubernetes_objects():
    kubernetes_objects()


def test_deployment_doc_autoscales_the_deployment_on_the_queue():
    k8s = kubernetes_objects()
    hpa, deployment = k8s["HorizontalPodAutoscaler"], k8s["Deployment"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    pods = [metric["pods"] for metric in hpa["spec"]["metrics"] if metric["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["vlm_router_num_requests_waiting"]
    assert "replicas" not in deployment["spec"], "the autoscaler sets the replicas"
    rules = [doc for doc in yaml_documents() if isinstance(doc, dict) and "rules" in doc]
    assert "vlm_router_num_requests_waiting" in rules[0]["rules"][0]["seriesQuery"]
    scrape = [doc for doc in yaml_documents() if isinstance(doc, dict) and "scrape_configs" in doc]
    assert scrape[0]["scrape_configs"][0]["authorization"]["credentials_file"]


def test_deployment_doc_objects_fit_together_and_the_server():
    k8s = kubernetes_objects()
    deployment, service_, job = k8s["Deployment"], k8s["Service"], k8s["Job"]
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service_["spec"]["selector"].items() <= labels.items()
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 9764}
    assert service_["spec"]["ports"] and all(port["targetPort"] in (*ports, 9764) for port in service_["spec"]["ports"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"

    config = parse_config(yaml.safe_load(k8s["ConfigMap"]["data"]["models.yaml"]), "ConfigMap models.yaml")
    assert template["spec"]["terminationGracePeriodSeconds"] > config.server.shutdown_grace_s
    (model,) = config.models
    assert model.load == "eager"

    readiness = container["readinessProbe"]["httpGet"]
    assert (readiness["path"], readiness["port"]) == ("/ready", "http"), "ready once the eager model has loaded; no key needed"
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    assert [e["name"] for e in container["env"]] == ["VLM_API_KEYS"] and container["env"][0]["valueFrom"]["secretKeyRef"]

    volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert set(mounts) == set(volumes)
    (config_mount,) = [m for name, m in mounts.items() if "configMap" in volumes[name]]
    assert config_mount["mountPath"] == "/app/models.yaml"  # where the image's CMD reads it
    (models_mount,) = [m for name, m in mounts.items() if "persistentVolumeClaim" in volumes[name]]
    assert models_mount["readOnly"] is True
    assert any(m["mountPath"] == str(config.server.cache_dir) for name, m in mounts.items() if "emptyDir" in volumes[name])

    # The job converts into the folder the replicas serve from, on the same claim.
    (converter,) = job["spec"]["template"]["spec"]["containers"]
    args = cli_parser().parse_args(converter["command"][1:])
    assert converter["command"][0] == "vlm-router" and args.command == "convert"
    (job_mount,) = converter["volumeMounts"]
    assert Path(args.out) == model.path
    assert model.path.is_relative_to(models_mount["mountPath"]) and args.out.startswith(job_mount["mountPath"])
    job_volumes = job["spec"]["template"]["spec"]["volumes"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in [*volumes.values(), *job_volumes] if "persistentVolumeClaim" in v}
    assert claims == {k8s["PersistentVolumeClaim"]["metadata"]["name"]}


def test_deployment_doc_names_only_metrics_the_server_exports_and_links_existing_files():
    text = DEPLOYMENT.read_text()
    named = {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\bvlm_router_\w+", text)}
    assert "vlm_router_num_requests_waiting" in named
    assert named <= METRICS, f"unknown metrics: {named - METRICS}"
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert links and all((DEPLOYMENT.parent / link).exists() for link in links), links
