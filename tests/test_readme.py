"""README.md runs: every shell and Python block, as written, in order, in a fresh copy of the repository, twice.

The copy holds the repository's tracked files (``git ls-files``): "in this folder" in the README is a clone. The
blocks run as a reader's would (see tests/readme_harness.py for how, and for the markers that say a block runs in
the background or not at all), in an environment like a reader's:

* no ``MNEMOSTORE_*`` variable of the test session (the suite's test embedder, its small pools) reaches them;
* the reader's virtual environment is a fresh one whose ``bin`` comes first on PATH (``pip``, ``python`` and
  ``mnemostore`` are its own), layered over this interpreter's packages: the extras the README installs are
  already there (CI installs ``.[dev]``), so its ``pip install`` lines finish quickly, and ``pip install -e .``
  points only that environment, never the one running the tests, at the copy (it builds without an isolated
  build environment, whose creation would take 3 s each time). Set-up 1, which makes its own ``.venv`` in the
  copy and installs into it, does so for real;
* ``MNEMOSTORE_SERVER_PORT`` is a free port, which ``mnemostore serve`` and the README's calls to it use;
* PostgreSQL is the local server of the README (127.0.0.1:5432, user postgres), in the databases whose names start
  with ``mnemostore_readme``: dropped before and after, kept between the two runs (a reader's second run finds
  them). Without that server the test is skipped, unless ``--require-postgres``. An advisory lock keeps two copies
  of this test (two engineers, one server) from using those databases at once.

Then every block runs a second time, in the same folder, with new processes: a reader who comes back.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import venv
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.readme_harness import Block, ReadmeError, ReadmeRun, extract_blocks, shell_commands

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"  # the server the README's PostgreSQL blocks name
PG_LOCK = 0x6D6E656D6F  # pg_advisory_lock key of this test ("mnemo")
TOOLS = ("bash", "curl", "jq", "git", "psql", "pg_dump", "pg_restore", "createdb", "dropdb", "promtool")
# The blocks allowed not to run, each by a piece of its code. Add one only with a reason in its marker.
EXPECTED_SKIPS = [".venv/bin/pytest", "docker build -t mnemostore .", "docker compose up -d --build"]
# Not passed to the blocks, besides every MNEMOSTORE_* variable: a reader's shell has none of these.
NOT_PASSED = {"DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS"}


def readme_blocks() -> list[Block]:
    return extract_blocks(README.read_text())


def test_readme_markers_and_skips() -> None:
    blocks = readme_blocks()
    skipped = [block for block in blocks if block.skip is not None]
    for block in skipped:
        print(f"skipped {block.label}: {block.skip}")
    assert [next((key for key in EXPECTED_SKIPS if key in b.code), b.code) for b in skipped] == EXPECTED_SKIPS
    for block in blocks:
        if block.lang == "bash":
            shell_commands(block)  # each one parses


def test_extract_blocks_markers() -> None:
    text = "\n".join(
        [
            "# Title",
            "```bash",
            "A=1 \\",
            "  B=2",
            "```",
            "<!-- readme-test: skip — not here -->",
            "",
            "```python",
            "print(1)",
            "```",
            "```text",
            "not run",
            "```",
            '<!-- readme-test: background, wait for "ready", then stop -->',
            "```sh",
            "serve",
            "```",
        ]
    )
    blocks = extract_blocks(text)
    assert [(b.lang, b.line, b.skip, b.wait_for, b.stop_when_ready) for b in blocks] == [
        ("bash", 3, None, None, False),
        ("python", 9, "not here", None, False),
        ("bash", 16, None, '"ready"', True),
    ]
    assert shell_commands(blocks[0]) == [(3, "A=1 \\\n  B=2")]
    with pytest.raises(ReadmeError, match="unknown marker"):
        extract_blocks("<!-- readme-test: sometimes -->\n```bash\nls\n```")
    with pytest.raises(ReadmeError, match="must precede a bash or python block"):
        extract_blocks("<!-- readme-test: skip — why -->\ntext\n```bash\nls\n```")
    with pytest.raises(ReadmeError, match="must precede a bash or python block"):
        extract_blocks("```bash\nls\n```\n<!-- readme-test: skip — why -->\n")


def _copy_of_repository(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _reader_venv(path: Path, copy: Path) -> Path:
    """A virtual environment over this interpreter's packages, with mnemostore from ``copy``: the reader's."""
    venv.EnvBuilder(with_pip=False).create(path)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
    outer = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_readme_copy.pth").write_text(f"{copy}\n")  # before the outer packages: '_' sorts before 'z'
    (site / "zz_readme_outer.pth").write_text("".join(f"{p}\n" for p in outer))  # plain paths: no outer .pth runs
    python = path / "bin" / "python"
    # `pip install -e .` without an isolated build environment (its backend installed here once): 2 s, not 5
    requires = tomllib.loads((copy / "pyproject.toml").read_text())["build-system"]["requires"]
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requires, "editables"]
    installed = subprocess.run(pip, capture_output=True, text=True, check=False)
    assert installed.returncode == 0, f"{' '.join(pip)} failed:\n{installed.stdout}{installed.stderr}"
    (path / "pip.conf").write_text("[install]\nno-build-isolation = false\n")  # pip's quirk: false = no isolation
    for name, module in (("pip", "pip._internal.cli.main"), ("mnemostore", "mnemostore.cli.main")):
        script = path / "bin" / name
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _drop_databases(conn: psycopg.Connection[tuple[object, ...]], names: set[str]) -> None:
    for name in sorted(names):
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def readme_postgres(request: pytest.FixtureRequest) -> Iterator[None]:
    """The README's PostgreSQL server, its databases dropped before and after, this test alone on them."""
    try:
        conn = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        if request.config.getoption("--require-postgres"):
            pytest.fail(f"the README's PostgreSQL at {PG_SERVER} is required but unreachable: {error}")
        pytest.skip(f"the README's PostgreSQL at {PG_SERVER} is unreachable: {error}")
    names = set(re.findall(r"\bmnemostore_readme\w*", README.read_text()))
    with conn:
        deadline = time.monotonic() + 600
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (PG_LOCK,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                pytest.fail("another README test held the PostgreSQL lock for 10 minutes")
            time.sleep(1)
        _drop_databases(conn, names)
        try:
            yield
        finally:
            _drop_databases(conn, names)


@pytest.mark.slow
def test_readme_runs_twice(
    readme_postgres: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"the README's commands need {', '.join(missing)}: install them (apt-get install ...)"
    blocks = readme_blocks()
    copy = tmp_path / "mnemostore"
    copy.mkdir()
    _copy_of_repository(copy)
    env_dir = _reader_venv(tmp_path / "reader-venv", copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_") and k not in NOT_PASSED}
    env |= {
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(env_dir),
        "MNEMOSTORE_SERVER_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",  # output in the order it was written, for the failure messages
    }
    workdir = tmp_path / "blocks"
    workdir.mkdir()
    for block in blocks:
        if block.skip is not None:
            print(f"skipped {block.label}: {block.skip}")
    times = []
    for number in (1, 2):
        run = ReadmeRun(copy, env, workdir, f"run-{number}", python=str(env_dir / "bin" / "python"))
        started = time.monotonic()
        failure = None
        try:
            run.run(blocks)
        except ReadmeError as error:
            failure = str(error)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        times.append(time.monotonic() - started)
        print(f"run {number}: {times[-1]:.1f} s; " + ", ".join(f"{b.line}: {s:.1f} s" for b, s in run.timings))
    with capsys.disabled():
        sys.stdout.write(f"\nREADME: {len(blocks)} blocks, run 1 {times[0]:.1f} s, run 2 {times[1]:.1f} s\n")
