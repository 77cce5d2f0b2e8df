"""The Dockerfile and docker-compose.yml stay true to Strata, checked without Docker.

Every variable the compose file gives Strata is one Strata (or the library named
for it) reads; the services reach each other by the names and credentials they are
given; the commands are the README's; the image runs as a non-root user, installs
the pinned requirements only and collects its static files with DEBUG off; the
paths its healthchecks ask for exist, and gunicorn started as the image starts it
answers them.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import yaml

from tests.factories.files import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
STRATA_SERVICES = ("bucket", "migrate", "web", "worker", "beat")
# Variables that a library reads rather than Strata's own code: the prefix or name,
# and the package whose source must name it.
LIBRARY_VARIABLES = {"AWS_": "botocore", "PROMETHEUS_": "prometheus_client", "WEB_CONCURRENCY": "gunicorn"}
# Folders of the repository that are not Strata's running code.
NOT_RUNTIME = {"tests", "bench", "docs", "scripts", "var"}


# -- Reading the files --------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?(?P<kind>[-?])(?P<rest>[^}]*))?\}")


def interpolate(value: object) -> str:
    """A compose value as it is with only the required variables set: defaults
    taken, `${NAME:?…}` replaced by a stand-in."""
    text = str(value)

    def replace(match: re.Match[str]) -> str:
        if match["kind"] == "-":
            return match["rest"]
        if match["kind"] == "?":
            return f"given-{match['name'].lower()}"
        return ""

    return _VARIABLE.sub(replace, text)


def environment(service: str) -> dict[str, str]:
    raw = services()[service].get("environment") or {}
    return {name: interpolate(value) for name, value in raw.items()}


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, continuation lines joined, grouped by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), " ".join(rest.split())))
    return stages


def runtime_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in runtime_stage():
        if keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def instruction(keyword: str) -> str:
    found = [rest for key, rest in runtime_stage() if key == keyword]
    assert len(found) == 1, f"the runtime stage has {len(found)} {keyword} instructions"
    return found[0]


def run_step(word: str) -> tuple[dict[str, str], list[str]]:
    """The runtime stage's RUN command containing `word`: its inline variables and argv."""
    for keyword, rest in runtime_stage():
        if keyword == "RUN" and word in rest:
            for command in rest.split("&&"):
                if word in command:
                    tokens = shlex.split(command)
                    variables = {}
                    while tokens and re.fullmatch(r"\w+=.*", tokens[0]):
                        name, _, value = tokens.pop(0).partition("=")
                        variables[name] = value
                    return variables, tokens
    raise AssertionError(f"no RUN step of the runtime stage runs {word}")


def readme_production() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Production")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def command_of(service: str) -> str:
    """What a service runs: its compose command, or else the image's CMD."""
    command = services()[service].get("command")
    if command is None:
        command = json.loads(instruction("CMD"))
    return command if isinstance(command, str) else " ".join(command)


# -- What Strata reads --------------------------------------------------------------


def _is_environ(node: ast.AST | None) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def names_read_by_strata() -> set[str]:
    """Every environment variable Strata's code names where it reads one:
    os.environ[...], os.environ.get/setdefault/pop(...), os.getenv(...), `"X" in
    os.environ`, and helpers called env_*(...) such as settings' env_bool."""
    names: set[str] = set()
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in NOT_RUNTIME or relative.parts[0].startswith("."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                function = node.func
                called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
                owner = function.value if isinstance(function, ast.Attribute) else None
                reads = (
                    (_is_environ(owner) and called in ("get", "setdefault", "pop"))
                    or called == "getenv"
                    or re.fullmatch(r"_?env(_\w+)?", called) is not None
                )
                if reads and _first_string(node):
                    names.add(_first_string(node))
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                    names.add(node.slice.value)
            elif (
                isinstance(node, ast.Compare)
                and any(_is_environ(c) for c in node.comparators)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str)
            ):
                names.add(node.left.value)
    return names


def read_by_library(name: str) -> bool:
    """Whether the library that owns a variable's prefix names it in its source."""
    for prefix, package in LIBRARY_VARIABLES.items():
        if name.startswith(prefix):
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                return False
            folder = Path(next(iter(spec.submodule_search_locations)))
            return any(name in path.read_text(errors="replace") for path in folder.rglob("*.py"))
    return False


# -- docker-compose.yml -------------------------------------------------------------


def test_compose_runs_the_whole_deployment():
    found = services()
    for name in ("postgres", "redis", "s3", *STRATA_SERVICES):
        assert name in found, f"docker-compose.yml has no {name} service"
    assert found["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in found["postgres"]["healthcheck"]["test"]
    assert found["redis"]["image"].startswith("redis:")
    assert found["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert found["s3"]["image"].startswith("chrislusf/seaweedfs:")
    assert "-s3" in found["s3"]["command"] and found["s3"]["healthcheck"]["test"]
    # Every Strata service runs the image built from this repository's Dockerfile.
    for name in STRATA_SERVICES:
        assert found[name]["build"] == "." and found[name]["image"] == found["web"]["image"]
    assert "x-strata" in compose(), "the shared Strata definition is the x-strata anchor"


def test_strata_starts_only_after_its_migrations_and_bucket():
    found = services()
    for name in ("web", "worker", "beat"):
        needs = found[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["bucket"]["condition"] == "service_completed_successfully"
        assert needs["redis"]["condition"] == "service_healthy"
    assert found["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert found["bucket"]["depends_on"]["s3"]["condition"] == "service_healthy"
    for one_shot in ("migrate", "bucket"):
        assert found[one_shot]["restart"] == "no"


def test_every_variable_compose_gives_strata_is_one_that_is_read():
    read = names_read_by_strata()
    given = {name for service in STRATA_SERVICES for name in environment(service)}
    given |= set(runtime_env()) | set(run_step("collectstatic")[0])
    # The interpreter's own.
    given -= {"PATH", "PYTHONUNBUFFERED"}
    unread = sorted(name for name in given if name not in read and not read_by_library(name))
    assert not unread, f"set for Strata but read by nothing: {unread}"


def test_compose_needs_a_secret_key_and_runs_with_debug_off():
    raw = services()["web"]["environment"]
    assert raw["SECRET_KEY"].startswith("${SECRET_KEY:?"), "SECRET_KEY must be given, never defaulted"
    for name in STRATA_SERVICES:
        assert environment(name)["DEBUG"] == "0"
    # The healthchecks ask for localhost, so whatever hosts are given, it stays allowed.
    assert "localhost" in environment("web")["ALLOWED_HOSTS"].split(",")


def test_the_services_reach_each_other_by_the_names_and_credentials_they_are_given():
    found = services()
    env = environment("web")
    database = urlparse(env["DATABASE_URL"])
    postgres = {name: interpolate(value) for name, value in found["postgres"]["environment"].items()}
    assert database.scheme.startswith("postgres") and database.hostname == "postgres"
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert urlparse(env["CELERY_BROKER_URL"]).hostname == "redis"
    endpoint = urlparse(env["AWS_ENDPOINT_URL"])
    assert endpoint.hostname == "s3" and endpoint.port == 8333
    s3 = {name: interpolate(value) for name, value in found["s3"]["environment"].items()}
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        s3["AWS_ACCESS_KEY_ID"],
        s3["AWS_SECRET_ACCESS_KEY"],
    ), "the S3 server accepts only the credentials Strata is given"
    for name in STRATA_SERVICES:
        assert environment(name)["STORAGE_URL"] == env["STORAGE_URL"]
    # Processes that share their metrics through files start with an empty folder.
    for name in ("web", "worker"):
        assert environment(name)["PROMETHEUS_MULTIPROC_DIR"] in found[name]["tmpfs"]
    assert environment("worker")["STRATA_WORKER_METRICS_PORT"] == "9808"


def test_web_worker_beat_and_migrate_run_the_commands_the_readme_documents():
    spans = re.findall(r"`([^`]+)`", readme_production())
    documented = {
        "web": next(span for span in spans if span.startswith("gunicorn ")),
        "worker": next(span for span in spans if span.startswith("celery ") and " worker" in span),
        "beat": next(span for span in spans if span.startswith("celery ") and " beat" in span),
        "migrate": next(span for span in spans if "manage.py migrate" in span),
    }
    for service, command in documented.items():
        assert command_of(service).startswith(command), f"{service} runs {command_of(service)!r}"
    assert "docker compose run --rm web python manage.py createsuperuser" in readme_production()
    assert "docker-compose.yml" in readme_production()


def test_exactly_one_service_runs_beat():
    runs_beat = [
        name
        for name in services()
        if re.search(
            r"\bcelery\b.*(\bbeat\b|--beat\b|\s-B\b)", command_of(name) if name in STRATA_SERVICES else ""
        )
    ]
    assert runs_beat == ["beat"]
    beat = services()["beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    # Its schedule (when each task last ran) is kept on a volume across restarts.
    schedule = command_of("beat").split("--schedule ")[1].split()[0]
    mounts = [volume.split(":")[1] for volume in beat.get("volumes", [])]
    assert any(schedule.startswith(mount + "/") for mount in mounts)


def test_the_bucket_service_creates_the_bucket_storage_url_names(s3_endpoint):
    import boto3
    from botocore.exceptions import ClientError

    env = environment("bucket")
    bucket = urlparse(env["STORAGE_URL"]).netloc
    assert env["STORAGE_URL"].startswith("s3://") and bucket
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    existed = bucket in {entry["Name"] for entry in client.list_buckets()["Buckets"]}
    command = services()["bucket"]["command"]
    process_env = {**os.environ, **env, "AWS_ENDPOINT_URL": s3_endpoint, "PYTHONPATH": str(ROOT)}
    process_env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        for _ in range(2):  # a second start finds the bucket and is content
            result = subprocess.run(
                [sys.executable, *command[1:]], env=process_env, cwd=str(ROOT), capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
        client.head_bucket(Bucket=bucket)
    finally:
        if not existed:
            # A bucket someone has since written to stays.
            with contextlib.suppress(ClientError):
                client.delete_bucket(Bucket=bucket)


# -- Dockerfile ---------------------------------------------------------------------


def test_the_image_runs_as_a_user_other_than_root():
    user = instruction("USER").split(":")[0]
    assert user not in ("root", "0", "")
    if user.isdigit():
        assert f"--uid {user}" in " ".join(rest for key, rest in runtime_stage() if key == "RUN")


def test_the_image_installs_the_pinned_requirements_and_nothing_else():
    pinned = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pinned = {re.sub(r"\[.*\]", "", name).lower(): version.strip() for name, version in pinned.items()}
    text = DOCKERFILE.read_text()
    for name, version in re.findall(r"([A-Za-z0-9_.\-]+(?:\[[\w,]+\])?)==([\w.]+)", text):
        name = re.sub(r"\[.*\]", "", name).lower()
        assert pinned.get(name) == version, (
            f"the Dockerfile pins {name}=={version}, requirements.txt does not"
        )
    installs = [
        rest for stage in dockerfile_stages() for key, rest in stage if key == "RUN" and "pip install" in rest
    ]
    assert installs, "the Dockerfile installs no requirements"
    for install in installs:
        words = shlex.split(install.split("pip install", 1)[1].split("&&")[0])
        arguments = [word for word in words if not word.startswith("-")]
        assert words[words.index("-r") + 1].endswith("requirements.txt")
        assert arguments == [words[words.index("-r") + 1]], f"installed besides requirements.txt: {arguments}"


def requirements_closure() -> set[str]:
    """The distributions `pip install -r requirements.txt` installs: each pinned one
    with its extras, and what they require in turn, read from the installed metadata."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted = [
        Requirement(line.split("#")[0].strip())
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if (name, frozenset(extras)) in found:
            continue
        found.add((name, frozenset(extras)))
        for line in metadata.distribution(name).requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in extras | {""}
            ):
                wanted.append(needed)
    return {name for name, _ in found}


# Imported with only the requirements' modules importable: what the web, the worker
# and beat load when they start (the middleware, every URL's view, the tasks, the
# Redis transport, gunicorn's threaded worker, the S3 client).
_IMPORT_AS_THE_IMAGE = """
import importlib.abc, importlib.machinery, json, sys, sysconfig
allowed = set(json.loads(sys.argv[1]))
installed = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
class OnlyRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name in allowed:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        where = spec and (spec.origin or next(iter(spec.submodule_search_locations or []), ""))
        if where and where.startswith(installed):
            raise ModuleNotFoundError(f"No module named {name!r} (requirements.txt does not install it)", name=name)
        return None
sys.meta_path.insert(0, OnlyRequirements())
import boto3, django, gunicorn.workers.gthread, kombu.transport
from django.urls import get_resolver
import config.wsgi
from config.celery import app
get_resolver().url_patterns
app.loader.import_default_modules()
kombu.transport.resolve_transport("redis")
import celery.apps.worker, celery.beat, celery.concurrency.prefork
boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
"""


def test_the_pinned_requirements_alone_hold_what_web_worker_and_beat_import(tmp_path):
    from importlib import metadata

    from packaging.utils import canonicalize_name

    closure = requirements_closure()
    allowed = {
        module
        for module, distributions in metadata.packages_distributions().items()
        if any(canonicalize_name(name) in closure for name in distributions)
    }
    allowed |= {path.parent.name for path in ROOT.glob("*/__init__.py")}
    env = {
        **runtime_env(),
        **environment("worker"),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "STRATA_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS_THE_IMAGE, json.dumps(sorted(allowed))],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_image_holds_strata_code_and_no_tests_benchmarks_or_docs():
    copied = {
        shlex.split(rest)[-2].rstrip("/")
        for key, rest in runtime_stage()
        if key == "COPY" and not rest.startswith("--from")
    }
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_RUNTIME and not path.parent.name.startswith(".")
    }
    assert packages | {"manage.py", "templates", "static"} <= copied
    assert not copied & {"tests", "bench", "docs", "."}
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "var", "tests", "bench", "**/__pycache__", ".env"} <= ignored


def test_the_dockerfile_collects_static_files_with_debug_off(tmp_path):
    static_root = collect_static(tmp_path)
    assert runtime_env()["DEBUG"] == "0"
    assert (static_root / "admin" / "css" / "base.css").exists()
    for path in (ROOT / "static").rglob("*"):
        if path.is_file():
            assert (static_root / path.relative_to(ROOT / "static")).exists()


def collect_static(tmp_path: Path) -> Path:
    """Run the Dockerfile's collectstatic step with its variables, into tmp_path."""
    variables, command = run_step("collectstatic")
    env = {**runtime_env(), **variables, "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    env["STATIC_ROOT"] = str(tmp_path / "static")
    env["STRATA_VAR_DIR"] = str(tmp_path / "var")
    assert command[:2] == ["python", "manage.py"]
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, cwd=str(ROOT), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tmp_path / "static"


def healthcheck_urls() -> dict[str, str]:
    image = json.loads(instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    web = services()["web"]["healthcheck"]["test"]
    urls = {}
    for where, test in (("image", image), ("web", web)):
        found = re.findall(r"http://127\.0\.0\.1:8000(/[\w/-]*)", " ".join(test))
        assert len(found) == 1, f"the {where} healthcheck asks for {found}"
        urls[where] = found[0]
    return urls


def test_the_healthcheck_paths_exist():
    from django.urls import resolve

    urls = healthcheck_urls()
    assert urls == {"image": "/healthz", "web": "/readyz"}
    for path in urls.values():
        resolve(path)


def test_gunicorn_started_as_the_image_starts_it_passes_the_image_healthcheck(tmp_path):
    static_root = collect_static(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = json.loads(instruction("CMD"))
    assert command[0] == "gunicorn"
    command = [str(Path(sys.executable).parent / "gunicorn"), *command[1:]]
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    env = {
        **runtime_env(),
        **environment("web"),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEB_CONCURRENCY": "2",
        "STATIC_ROOT": str(static_root),
        "STRATA_VAR_DIR": str(tmp_path / "var"),
        # Local stand-ins for the servers of the compose file.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'strata.sqlite3'}",
        "STORAGE_URL": f"file://{tmp_path / 'store'}",
        "CELERY_BROKER_URL": "filesystem://",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(command, env=env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        check = json.loads(instruction("HEALTHCHECK").split(" CMD ", 1)[1])
        check = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in check]
        assert check[0] == "python"
        result = subprocess.run([sys.executable, *check[1:]], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr + (tmp_path / "gunicorn.log").read_text()
        # WhiteNoise serves what collectstatic gathered, with DEBUG off.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/static/admin/css/base.css", headers={"Host": "localhost"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -r requirements-dev.txt"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
