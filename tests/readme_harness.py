"""Runs the shell and Python blocks of README.md the way a reader would (used by tests/test_readme.py).

A block is a fenced ```bash / ```sh or ```python block. Every block runs as written, in document order: the
shell blocks in one bash process (tests/readme_shell.sh), the Python blocks in one Python process
(tests/readme_python.py), both kept alive across blocks (a variable set in one block is there in the next), in
one folder. A shell block runs line by line under ``set -euo pipefail``, each command line through ``eval``, so
that a failing ``a && b`` line fails too (plain ``set -e`` lets a list go on). A Python block runs like lines
typed into ``python``: a bare expression prints its value. A block fails on the first command that fails or the
first exception; the message names its README line and shows its output.

An HTML comment on the line before a block (blank lines between are allowed) changes how it runs:

* ``<!-- readme-test: skip — why -->``: not run; the test lists the skipped blocks and checks that list.
* ``<!-- readme-test: background, wait for CONDITION -->``: a command that runs until Ctrl-C (a server, a worker).
  It runs in the background of the shell; the next block starts once CONDITION holds: a URL that answers 2xx
  (``$VAR`` and ``${VAR:-default}`` are expanded from the environment) or a "quoted text" in its output. It is
  stopped with Ctrl-C (SIGINT to its process group) when the run ends.
* ``<!-- readme-test: background, wait for CONDITION, then stop -->``: the same, stopped as soon as CONDITION holds.

Any other ``readme-test`` comment, or one that no runnable block follows, is an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

__all__ = ["Block", "ReadmeError", "ReadmeRun", "extract_blocks", "shell_commands"]

LANGUAGES = {"bash": "bash", "sh": "bash", "python": "python"}
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([^\s`]*)")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->$")
SKIP = re.compile(r"^skip\s*[—:-]\s*(\S.*)$")
BACKGROUND = re.compile(r"^background,\s*wait for\s+(.+?)(,\s*then stop)?$")
BLOCK_TIMEOUT = 300.0  # seconds one block may take (pip installs, loading the model)
READY_TIMEOUT = 240.0  # seconds a background command may take to be ready (set-up 1 installs a venv first)
STOP_TIMEOUT = 20.0  # seconds a background command may take to stop after Ctrl-C


class ReadmeError(Exception):
    """The README cannot be run: a bad marker, an unfinished command, or a block that failed."""


@dataclass(frozen=True)
class Block:
    """One runnable block: its language, the README line of its first line of code, its code and its marker."""

    lang: str
    line: int
    code: str
    skip: str | None = None
    wait_for: str | None = None
    stop_when_ready: bool = False

    @property
    def label(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def _parse_marker(text: str, line: int) -> dict[str, object]:
    if match := SKIP.match(text):
        return {"skip": match.group(1)}
    if match := BACKGROUND.match(text):
        return {"wait_for": match.group(1), "stop_when_ready": match.group(2) is not None}
    raise ReadmeError(
        f"README.md:{line}: unknown marker {text!r}: use 'skip — why', 'background, wait for URL-or-\"text\"' "
        "or 'background, wait for URL-or-\"text\", then stop'"
    )


def extract_blocks(text: str) -> list[Block]:
    """The README's bash/sh and python blocks in document order, with their markers."""
    lines = [*text.splitlines(), ""]
    blocks: list[Block] = []
    marker: tuple[int, dict[str, object]] | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        fence = FENCE.match(stripped)
        runnable = fence is not None and fence.group(2).lower() in LANGUAGES
        # only blank lines may stand between a marker and its block
        if marker is not None and not runnable and (stripped or i == len(lines) - 1):
            raise ReadmeError(f"README.md:{marker[0]}: a readme-test marker must precede a bash or python block")
        if match := MARKER.match(stripped):
            marker = (i + 1, _parse_marker(match.group(1), i + 1))
        if fence is None:
            i += 1
            continue
        closing, lang = fence.group(1), LANGUAGES.get(fence.group(2).lower())
        end = next(
            (
                j
                for j in range(i + 1, len(lines))
                if lines[j].strip().rstrip(closing[0]) == "" and lines[j].strip().startswith(closing)
            ),
            None,
        )
        if end is None:
            raise ReadmeError(f"README.md:{i + 1}: this code block is never closed")
        if lang is not None:
            options = marker[1] if marker else {}
            if lang != "bash" and "wait_for" in options:
                raise ReadmeError(f"README.md:{i + 1}: only a shell block can run in the background")
            code = textwrap.dedent("\n".join(lines[i + 1 : end]))  # a block may be indented, in a list
            blocks.append(Block(lang, i + 2, code, **options))  # type: ignore[arg-type]
        marker = None
        i = end + 1
    return blocks


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """The block's command lines with their README line (continued lines joined, comments left out).

    A command is complete when ``bash -n`` accepts it: trailing ``\\``, ``&&``, ``|`` or an open quote go on.
    """
    commands: list[tuple[int, str]] = []
    pending: list[str] = []
    start = block.line
    for offset, line in enumerate(block.code.splitlines()):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            start = block.line + offset
        pending.append(line)
        text = "\n".join(pending)
        if text.endswith("\\"):
            continue
        check = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
        if check.returncode == 0:
            commands.append((start, text))
            pending = []
        elif "unexpected end of file" not in check.stderr:
            raise ReadmeError(f"README.md:{start}: not a valid shell command: {check.stderr.strip()}")
    if pending:
        raise ReadmeError(f"README.md:{start}: this shell command is never finished")
    return commands


HERE = Path(__file__).resolve().parent
BASH_DRIVER = HERE / "readme_shell.sh"  # one bash for the shell blocks of a run
PYTHON_DRIVER = HERE / "readme_python.py"  # one Python for its Python blocks


class _Session:
    """One driver process, talked to over two pipes."""

    def __init__(self, argv: list[str], folder: Path, env: dict[str, str], log: Path) -> None:
        ctl_read, self._ctl = os.pipe()
        self._rep, rep_write = os.pipe()
        with log.open("wb") as log_file:
            self.process = subprocess.Popen(
                [*argv, str(ctl_read), str(rep_write)],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(ctl_read, rep_write),
                start_new_session=True,
            )
        os.close(ctl_read)
        os.close(rep_write)
        self._buffer = b""

    def send(self, line: str) -> None:
        os.write(self._ctl, (line + "\n").encode())

    def answer(self, timeout: float) -> str:
        """The driver's next line; "exit N" when it ended; "timeout" when it said nothing for ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._rep], [], [], left)[0]:
                return "timeout"
            chunk = os.read(self._rep, 4096)
            if not chunk:
                return f"exit {self.process.wait()}"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        os.close(self._ctl)  # end of input: the driver leaves its loop
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        _kill_group(self.process.pid, signal.SIGKILL)  # anything a block left behind in the shell's group
        os.close(self._rep)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _expand(text: str, env: dict[str, str]) -> str:
    """``$VAR`` and ``${VAR:-default}`` from ``env``, as the shell would."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return env.get(name) or (match.group(2) or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", value, text)


@dataclass
class _Background:
    block: Block
    pid: int
    output: Path


@dataclass
class ReadmeRun:
    """One run of every block, in ``folder``, with ``env``; ``workdir`` keeps the scripts and outputs."""

    folder: Path
    env: dict[str, str]
    workdir: Path
    name: str
    python: str = sys.executable
    timings: list[tuple[Block, float]] = field(default_factory=list)
    _bash: _Session | None = None
    _python: _Session | None = None
    _background: list[_Background] = field(default_factory=list)
    _count: int = 0

    def run(self, blocks: list[Block]) -> None:
        try:
            for block in blocks:
                if block.skip is None:
                    started = time.monotonic()
                    self._run_block(block)
                    self.timings.append((block, time.monotonic() - started))
            for job in self._background:  # a server or worker that died meanwhile fails the run too
                if not _group_alive(job.pid):
                    self._fail(job.block, job.output, "ended by itself before the end of the run")
        finally:
            self.close()

    def _path(self, suffix: str) -> Path:
        self._count += 1
        return self.workdir / f"{self.name}-{self._count:03d}{suffix}"

    def _run_block(self, block: Block) -> None:
        output = self._path(".out")
        if block.lang == "python":
            if self._python is None:
                argv = [self.python, str(PYTHON_DRIVER)]
                self._python = _Session(argv, self.folder, self.env, self._path(".log"))
            source = self._path(".src.py")
            source.write_text(block.code + "\n")
            self._python.send(f"{source}\t{output}\t{block.line}")
            self._expect(self._python, block, output, "ok")
            return
        if self._bash is None:
            argv = ["bash", "--noprofile", "--norc", str(BASH_DRIVER)]
            self._bash = _Session(argv, self.folder, self.env, self._path(".log"))
        script = self._path(".sh")
        script.write_text(
            "".join(
                f"printf '%s\\n' {shlex.quote('$ ' + command)}\neval {shlex.quote(command)}\n"
                for _, command in shell_commands(block)
            )
        )
        if block.wait_for is None:
            self._bash.send(f"run {script} {output}")
            self._expect(self._bash, block, output, "ok")
            return
        self._bash.send(f"background {script} {output}")
        answer = self._bash.answer(10)
        if not answer.startswith("pid "):
            self._fail(block, output, f"could not start in the background ({answer})")
        job = _Background(block, int(answer.split()[1]), output)
        self._background.append(job)
        self._wait_ready(job)
        if block.stop_when_ready:
            self._stop(job)

    def _expect(self, session: _Session, block: Block, output: Path, wanted: str) -> None:
        answer = session.answer(BLOCK_TIMEOUT)
        if answer == wanted:
            return
        if answer == "timeout":
            self._fail(block, output, f"still running after {BLOCK_TIMEOUT:.0f} s")
        if answer == "error":
            self._fail(block, output, "it raised an exception")
        # the transcript's last "$ command" line is the command that failed
        firsts = {f"$ {command}".splitlines()[0]: line for line, command in shell_commands(block)}
        failed = [firsts[text] for text in _tail(output, 10_000).splitlines() if text in firsts]
        where = f" at README.md:{failed[-1]}" if failed else ""
        self._fail(block, output, f"a command failed{where} (the shell's {answer})")

    def _wait_ready(self, job: _Background) -> None:
        spec = job.block.wait_for or ""
        text = spec[1:-1] if spec.startswith('"') and spec.endswith('"') else None
        url = None if text is not None else _expand(spec, self.env)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if text is not None:
                if text in _tail(job.output, 1000):
                    return
            else:
                try:
                    with urllib.request.urlopen(str(url), timeout=2) as answer:
                        if 200 <= answer.status < 300:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            if not _group_alive(job.pid):
                self._fail(job.block, job.output, f"ended before {url or spec} was ready")
            time.sleep(0.2)
        self._fail(job.block, job.output, f"not ready ({url or spec}) after {READY_TIMEOUT:.0f} s")

    def _stop(self, job: _Background) -> None:
        """Ctrl-C, as a reader would; SIGKILL when it does not stop in time."""
        self._background.remove(job)
        _kill_group(job.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(job.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _kill_group(job.pid, signal.SIGKILL)

    def close(self) -> None:
        for job in reversed(self._background):
            self._stop(job)
        for session in (self._bash, self._python):
            if session is not None:
                session.close()
        self._bash = self._python = None

    def _fail(self, block: Block, output: Path, reason: str) -> NoReturn:
        message = [f"{block.label} failed in {self.name}: {reason}", "--- block ---", block.code, "--- output ---"]
        message.append(_tail(output, 120) or "(no output)")
        for job in self._background:
            if job.block is not block:
                message += [f"--- in the background: {job.block.label}, its last output ---", _tail(job.output, 12)]
        raise ReadmeError("\n".join(message))


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:  # not written yet
        return ""
