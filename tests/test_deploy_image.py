"""The container image and the compose stack, read as files (no build here: deploy/image/test-image.sh builds and
runs the image with Podman, minutes; see README "Image").

* .env.example lists every setting of ``Settings`` and is exactly what tools/env_example.py writes, so a new
  setting cannot be left out of it; every variable compose.yaml reads is documented there too;
* the Dockerfile takes its base as ``BASE_IMAGE`` (the official image by default), runs as a non-root user, has a
  HEALTHCHECK on /healthz and serves by default, and bakes no setting but the listen address;
* compose.yaml has the services, health checks, volumes and start order a deploy relies on (migrate first);
* the HEALTHCHECK script passes on a 200 from /healthz and fails on anything else.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from mnemostore.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
HEALTHCHECK = ROOT / "deploy" / "image" / "healthcheck.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("env_example", ROOT / "tools" / "env_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env_lines() -> dict[str, str]:
    """Variable -> the line naming it (commented out or not) in .env.example."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=.*", line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is listed twice in .env.example"
            found[match.group(1)] = line
    return found


def test_env_example_lists_every_setting() -> None:
    listed = _env_lines()
    names = [f"MNEMOSTORE_{name.upper()}" for name in Settings.model_fields]
    missing = [name for name in names if name not in listed]
    assert not missing, f"not in .env.example (run python tools/env_example.py): {missing}"
    # Each is commented out at its default: the file sets nothing by accident, a copy of it is a valid .env.
    for name in Settings.model_fields:
        assert listed[f"MNEMOSTORE_{name.upper()}"].startswith("# "), name


def test_env_example_is_generated() -> None:
    assert ENV_EXAMPLE.read_text() == _tool().render(), "run python tools/env_example.py"


def test_env_example_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting every setting as it stands changes nothing: the values shown are the defaults, as parsed."""
    for name in list(os.environ):
        if name.startswith("MNEMOSTORE_") or name in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(name)
    defaults = Settings().model_dump()
    for variable, line in _env_lines().items():
        if variable.startswith("MNEMOSTORE_") and variable[len("MNEMOSTORE_") :].lower() in Settings.model_fields:
            monkeypatch.setenv(variable, line.partition("=")[2])
    assert sum(name.startswith("MNEMOSTORE_") for name in os.environ) == len(Settings.model_fields)
    assert Settings().model_dump() == defaults


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_variables_are_documented() -> None:
    listed = _env_lines()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert "POSTGRES_PASSWORD" in used
    assert sorted(used - set(listed)) == [], "document these in tools/env_example.py's HEADER"


def test_compose_stack() -> None:
    data = _compose()
    services = data["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "backup", "prometheus"}
    for name, service in services.items():
        if name != "migrate":
            assert service["healthcheck"]["test"], f"{name} has no health check"
    assert services["migrate"]["command"] == ["mnemostore", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for role in ("api", "worker", "backup"):
        assert services[role]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[role]["image"] == services["migrate"]["image"]
        assert services[role]["env_file"] == ".env"
        assert "POSTGRES_PASSWORD:?" in services[role]["environment"]["MNEMOSTORE_DATABASE_URL"]
    assert services["api"]["command"] == ["mnemostore", "serve"]
    assert services["worker"]["command"] == ["mnemostore", "worker"]
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "pgvector" in services["postgres"]["image"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "backups:/var/lib/mnemostore/backups" in services["backup"]["volumes"]
    assert "--keep-daily" in services["backup"]["command"][0] and "--verify" in services["backup"]["command"][0]
    named = {volume.partition(":")[0] for s in services.values() for volume in s.get("volumes", [])}
    assert named - {"./deploy/prometheus"} == set(data["volumes"])


def test_prometheus_config_scrapes_the_job_the_alerts_name() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert [job["job_name"] for job in config["scrape_configs"]] == ["mnemostore"]
    assert 'job="mnemostore"' in (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()


def _instructions(stage_text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile's text, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", stage_text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    first_from = next(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in instructions[:first_from]
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) == 2 and all(instructions[i][1].startswith("${BASE_IMAGE}") for i in stages)
    runtime = instructions[stages[-1] :]
    assert any(word == "COPY" and args.startswith("--from=builder /opt/mnemostore") for word, args in runtime)
    users = [args for word, args in runtime if word == "USER"]
    assert users and users[-1].partition(":")[0] not in {"0", "root"}
    health = [args for word, args in runtime if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/opt/mnemostore/healthcheck.py" in health[0]
    assert [args for word, args in runtime if word == "CMD"] == ['["mnemostore", "serve"]']
    # Configuration only from the environment: the image sets the listen address and nothing secret.
    env = " ".join(args for word, args in instructions if word == "ENV")
    baked = set(re.findall(r"\b(MNEMOSTORE_[A-Z_]+)=", env))
    assert baked == {"MNEMOSTORE_SERVER_HOST", "MNEMOSTORE_SERVER_PORT"}
    assert not re.search(r"(KEY|PASSWORD|SECRET|TOKEN)[A-Z_]*=", env)
    assert not any(word == "ARG" and re.search(r"(KEY|PASSWORD|SECRET|TOKEN)", args) for word, args in instructions)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", ".env", "**/*.db"} <= set(ignored)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def test_healthcheck_script(probe_server: tuple[int, type[_Handler]]) -> None:
    port, handler = probe_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_")}

    def check(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(HEALTHCHECK)], env={**env, **extra}, capture_output=True, text=True, timeout=30
        )

    assert check(MNEMOSTORE_SERVER_PORT=str(port)).returncode == 0
    handler.status = 503
    failed = check(MNEMOSTORE_SERVER_PORT=str(port))
    assert failed.returncode == 1 and "503" in failed.stderr
    handler.status = 200
    assert check(MNEMOSTORE_HEALTHCHECK_URL=f"http://127.0.0.1:{port}/other").returncode == 1
    refused = check(MNEMOSTORE_SERVER_PORT=str(_closed_port()))
    assert refused.returncode == 1 and "healthcheck:" in refused.stderr


def _closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
