"""``/metrics`` with several workers: ``mnemostore serve --workers 2`` started as a user would, scraped for real.

Each request reaches one worker and so does each scrape; the figures must still be the service's. The workers
write to the folder ``serve`` makes (found through ``TMPDIR``, pointed at the test's folder), and the test reads
each worker's file there on its own: both must have served, and every scrape must show exactly their sum.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from mnemostore.api.metrics import MULTIPROC_ENV
from mnemostore.cli._serve import _metrics_folder
from tests.fix_api import ADMIN_KEY, free_port

ROOT = Path(__file__).resolve().parent.parent
HEALTHZ = 'mnemostore_http_requests_total{method="GET",route="/healthz",status="200"}'


def _command() -> list[str]:
    return [sys.executable, "-c", "from mnemostore.cli.main import main; main()"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMOSTORE_") and k not in ("DATABASE_URL",)}
    env.pop(MULTIPROC_ENV, None)
    # The subprocess runs this checkout's code, whatever the interpreter has installed.
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**env, "PYTHONPATH": path, "MNEMOSTORE_ADMIN_API_KEY": ADMIN_KEY, "HOME": str(tmp_path), **extra}


def _sample(text: str, series: str) -> list[float]:
    """Every value of the exact series ``series`` (name and labels as written) in an exposition."""
    return [float(v) for v in re.findall(rf"^{re.escape(series)} (\S+)$", text, flags=re.M)]


def _per_worker(folder: Path) -> dict[int, float]:
    """/healthz requests counted by each worker, read from its own counter file."""
    counts: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if sample.name == "mnemostore_http_requests_total" and sample.labels.get("route") == "/healthz":
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts


@pytest.fixture
def two_workers(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[tuple[str, Path, Path]]:
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    stderr = (tmp_path / "serve.err").open("w")
    env = _env(
        tmp_path,
        TMPDIR=str(temp),
        MNEMOSTORE_REDIS_URL=redis_url,
        MNEMOSTORE_CACHE_KEY_PREFIX=f"{key_prefix}-workers",
        MNEMOSTORE_EMBEDDER="hashing",  # no model to load twice
        MNEMOSTORE_SERVER_INDEXER="false",
    )
    command = [*_command(), "--database-url", f"sqlite:///{tmp_path / 'w.db'}", "serve", "--port", str(port),
               "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 60
        # Both workers are up when both have logged that their start-up is complete (they accept from then on).
        while _serving(tmp_path / "serve.err") < 2:
            assert process.poll() is None, (tmp_path / "serve.err").read_text()
            assert time.monotonic() < deadline, "the two workers did not come up"
            time.sleep(0.1)
        folders = list(temp.glob("mnemostore-metrics-*"))
        assert len(folders) == 1, folders
        yield f"http://127.0.0.1:{port}", folders[0], temp
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            stderr.close()
    assert not list(temp.glob("mnemostore-metrics-*")), "serve left its metrics folder behind"


def _serving(log: Path) -> int:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line.get("message") == "Application startup complete.")


@pytest.mark.slow
def test_metrics_add_up_across_two_workers(two_workers: tuple[str, Path, Path]):
    base, folder, _ = two_workers

    def get(path: str) -> httpx.Response:
        with httpx.Client(timeout=10) as client:  # a new connection each: the workers share the listening socket
            return client.get(f"{base}{path}")

    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(20):  # until both workers have served some (each batch is 40 requests at once)
            assert all(r.status_code == 200 for r in pool.map(get, ["/healthz"] * 40))
            sent += 40
            if len([n for n in _per_worker(folder).values() if n > 0]) >= 2:
                break
    per_worker = _per_worker(folder)
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
    assert sum(per_worker.values()) == sent

    for _ in range(6):  # whichever worker answers the scrape, it reports both
        text = get("/metrics").text
        assert _sample(text, HEALTHZ) == [sent]
        count = 'mnemostore_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
        assert _sample(text, count) == [sent]
        # Gauges the workers share come out once, combined: the database's, and the requests in flight (this one).
        assert _sample(text, "mnemostore_database_up") == [1.0]
        assert _sample(text, 'mnemostore_outbox_jobs{state="pending"}') == [0.0]
        assert _sample(text, "mnemostore_http_requests_in_flight")[0] >= 1
        assert _sample(text, 'mnemostore_cache_breaker_state{state="open"}') == [0.0]
        assert _sample(text, 'mnemostore_cache_breaker_state{state="closed"}') == [1.0]
        assert "pid=" not in text


def test_serve_empties_a_given_metrics_folder_and_removes_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with _metrics_folder(workers=1):  # set by the operator: used even for one worker, emptied of old figures
        assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    assert given.exists()

    monkeypatch.delenv(MULTIPROC_ENV)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    with _metrics_folder(workers=1):
        assert MULTIPROC_ENV not in os.environ  # one worker, nothing asked: the figures stay in the process
    with _metrics_folder(workers=3):
        made = Path(os.environ[MULTIPROC_ENV])
        assert made.parent == tmp_path and made.name.startswith("mnemostore-metrics-") and made.is_dir()
    assert not made.exists() and MULTIPROC_ENV not in os.environ


def test_cache_figures_of_several_processes_add_up(tmp_path: Path):
    """Two processes copy their caches' figures into the folder; a third scrapes: sums, worst state, derived ratio.

    (In processes of their own: prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` once, when it is imported.)
    """
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**_env(tmp_path), MULTIPROC_ENV: str(folder)}
    worker = (
        "import sys\n"
        "from mnemostore.api.metrics import ApiMetrics\n"
        "hits, state = int(sys.argv[1]), sys.argv[2]\n"
        "health = {'caches': {'user': {'hits': hits, 'misses': 1}}, 'breaker': {'state': state, 'opened': 1},\n"
        "          'degraded': state == 'open', 'dirty_keys': 2, 'events': {'published': hits, 'dropped': 0}}\n"
        "metrics = ApiMetrics(cache_probe=lambda: health)\n"
        "metrics.refresh()\n"
        "if len(sys.argv) > 3:\n"
        "    metrics.process_stopped()\n"
    )
    for args in (["3", "open"], ["5", "closed"], ["100", "half_open", "stopped"]):
        subprocess.run([sys.executable, "-c", worker, *args], env=env, check=True, timeout=60)
    scrape = "from mnemostore.api.metrics import ApiMetrics; print(ApiMetrics().render().decode())"
    text = subprocess.run([sys.executable, "-c", scrape], env=env, check=True, timeout=60, capture_output=True,
                          text=True).stdout  # fmt: skip
    # Counters: every process's, the stopped one's included (what it counted happened).
    assert _sample(text, 'mnemostore_cache_hits_total{cache="user"}') == [108.0]
    assert _sample(text, 'mnemostore_cache_misses_total{cache="user"}') == [3.0]
    assert _sample(text, 'mnemostore_cache_hit_ratio{cache="user"}') == [108 / 111]
    assert _sample(text, "mnemostore_cache_breaker_opened_total") == [3.0]
    assert _sample(text, "mnemostore_events_published_total") == [108.0]
    # Live gauges: the processes still "running" (their files are there), not the one that stopped.
    assert _sample(text, 'mnemostore_cache_breaker_state{state="open"}') == [1.0]
    assert _sample(text, 'mnemostore_cache_breaker_state{state="half_open"}') == [0.0]
    assert _sample(text, "mnemostore_cache_degraded") == [1.0]
    assert _sample(text, "mnemostore_cache_invalidation_backlog") == [4.0]
