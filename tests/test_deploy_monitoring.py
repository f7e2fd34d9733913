"""deploy/: the Grafana dashboard and the Prometheus alerts ask only for series the service exports, and the rules
pass promtool's checks and unit tests; the series the issue added (database up, breaker state) say what they mean.

The exported series are read from a real scrape of the app, after requests that make every labelled series
appear (a 429 included), so a renamed metric or label fails here before it blanks a dashboard panel or silences an
alert. promtool (Debian's ``prometheus`` package, installed by .ci/run) also parses the dashboard's queries, as
recording rules with Grafana's variables filled in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mnemostore import MnemoStore
from mnemostore.api import create_app
from mnemostore.api.metrics import ApiMetrics
from tests.fix_api import api_settings, make_tenant

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "mnemostore.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
# Labels Prometheus adds to every series it scrapes, and the bucket bound of histograms.
TARGET_LABELS = {"job", "instance"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*", "$instance": ".*"}


def _dashboard_queries() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for panel in data["panels"] for t in panel.get("targets", [])]
    found += [v["query"]["query"] for v in data["templating"]["list"] if v["type"] == "query"]
    return found


def _alert_queries() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _selectors(expr: str) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """``(metric, {label: (operator, value)})`` for each ``mnemostore_…`` series an expression selects."""
    for found in re.finditer(r"\bmnemostore_[a-z_]+\b", expr):
        matchers: dict[str, tuple[str, str]] = {}
        rest = expr[found.end() :]
        if rest.startswith("{"):
            body, depth, quoted, i = "", 0, False, 0
            while True:  # up to the brace that closes, skipping braces inside quoted values
                char = rest[i]
                if char == "\\" and quoted:
                    body += rest[i : i + 2]
                    i += 2
                    continue
                quoted = not quoted if char == '"' else quoted
                depth += (char == "{") - (char == "}") if not quoted else 0
                body += char
                i += 1
                if depth == 0:
                    break
            for name, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', body[1:-1]):
                matchers[name] = (op, value)
        yield found.group(0), matchers


def _grouping(expr: str) -> set[str]:
    return {
        label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for label in group.split(",")
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[str]]]:
    """Sample name -> label -> values seen, from a scrape after requests of every kind the series count."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scrape') / 'm.db'}"
    with MnemoStore(url) as store:
        store.migrate()
    with TestClient(create_app(api_settings(url)), raise_server_exceptions=False) as client:
        t = make_tenant(client, config={"rate_limits": {"api_key": "3/minute"}})
        user = t.ok("POST", "/v1/users", 201, json={})
        t.call("GET", f"/v1/users/{user['id']}")
        statuses = [t.call("GET", "/v1/users").status_code for _ in range(3)]
        assert 429 in statuses  # the rate-limit counter has its series
        text = client.get("/metrics").text
    samples: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = samples.setdefault(sample.name, {})
            for name, value in sample.labels.items():
                labels.setdefault(name, set()).add(value)
    return samples


def test_the_scrape_has_every_series_of_the_issue(exported: dict[str, dict[str, set[str]]]):
    for name in (
        "mnemostore_http_requests_total",
        "mnemostore_http_request_duration_seconds_bucket",
        "mnemostore_db_query_duration_seconds_bucket",
        "mnemostore_cache_hits_total",
        "mnemostore_cache_misses_total",
        "mnemostore_cache_hit_ratio",
        "mnemostore_outbox_jobs",
        "mnemostore_outbox_oldest_pending_seconds",
        "mnemostore_rate_limited_total",
        "mnemostore_cache_breaker_state",
        "mnemostore_cache_breaker_opened_total",
        "mnemostore_database_up",
    ):
        assert name in exported, name
    assert exported["mnemostore_cache_breaker_state"]["state"] == {"closed", "open", "half_open"}
    assert exported["mnemostore_rate_limited_total"]["scope"] == {"api_key"}


@pytest.mark.parametrize(
    "source, queries", [("dashboard", _dashboard_queries()), ("alerts", _alert_queries())], ids=["dashboard", "alerts"]
)
def test_every_series_and_label_queried_is_exported(
    source: str, queries: list[str], exported: dict[str, dict[str, set[str]]]
):
    assert len(queries) >= (20 if source == "dashboard" else 7)
    used: set[str] = set()
    for expr in queries:
        labels_here: set[str] = set(TARGET_LABELS)
        for metric, matchers in _selectors(expr):
            assert metric in exported, f"{source}: {metric} is not exported (in {expr!r})"
            used.add(metric)
            known = exported[metric]
            labels_here |= set(known)
            for label, (op, value) in matchers.items():
                if label in TARGET_LABELS:
                    continue
                assert label in known, f"{source}: {metric} has no label {label!r} (in {expr!r})"
                if op == "=" and "$" not in value:
                    assert value in known[label], f"{source}: {metric}{{{label}={value!r}}} never occurs"
                if op in ("=~", "!~") and label == "route":
                    re.compile(value.replace("\\\\", "\\"))  # the route patterns are valid regular expressions
        assert _grouping(expr) <= labels_here, f"{source}: grouping by labels the series lack in {expr!r}"
    assert used, source


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    return found


def test_promtool_checks_the_alert_rules_and_runs_their_unit_tests():
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_parses_every_dashboard_query(tmp_path: Path):
    promtool = _promtool()
    rules = []
    for index, expr in enumerate(q for q in _dashboard_queries() if not q.startswith("label_values(")):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_panels_do_not_overlap():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells
    assert len({p["id"] for p in panels}) == len(panels)


# -- the series the issue added -------------------------------------------------------------------------------------


def _value(text: str, series: str) -> float:
    found = re.findall(rf"^{re.escape(series)} (\S+)$", text, flags=re.M)
    assert len(found) == 1, (series, found)
    return float(found[0])


def test_breaker_state_and_degraded_while_redis_is_unreachable(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with MnemoStore(url) as store:
        store.migrate()
    # Nothing listens on port 1: the first cache call fails and opens the breaker; the database serves alone.
    app = create_app(api_settings(url, redis_url="redis://127.0.0.1:1/0"))
    with TestClient(app, raise_server_exceptions=False) as client:
        t = make_tenant(client)
        t.ok("POST", "/v1/users", 201, json={})
        text = client.get("/metrics").text
    assert _value(text, 'mnemostore_cache_breaker_state{state="open"}') == 1.0
    assert _value(text, 'mnemostore_cache_breaker_state{state="closed"}') == 0.0
    assert _value(text, "mnemostore_cache_degraded") == 1.0
    assert _value(text, "mnemostore_cache_breaker_opened_total") >= 1.0
    assert _value(text, "mnemostore_database_up") == 1.0


def test_database_up_is_0_while_the_database_is_unreachable():
    # Nothing listens on port 1: the store starts (and answers 503), the scrape says why.
    app = create_app(api_settings("postgresql://postgres@127.0.0.1:1/nowhere"))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert _value(response.text, "mnemostore_database_up") == 0.0
        assert client.get("/readyz").status_code == 503


def test_cache_counters_follow_the_cache_totals_and_the_ratio_is_derived():
    health: dict[str, object] = {"caches": {"user": {"hits": 3, "misses": 1}}, "breaker": {"state": "closed"}}
    metrics = ApiMetrics(cache_probe=lambda: health)
    first = metrics.render().decode()
    assert _value(first, 'mnemostore_cache_hits_total{cache="user"}') == 3.0
    assert _value(first, 'mnemostore_cache_hit_ratio{cache="user"}') == 0.75
    health["caches"] = {"user": {"hits": 5, "misses": 3}}  # two more hits, two more misses
    second = metrics.render().decode()
    assert _value(second, 'mnemostore_cache_hits_total{cache="user"}') == 5.0
    assert _value(second, 'mnemostore_cache_misses_total{cache="user"}') == 3.0
    assert _value(second, 'mnemostore_cache_hit_ratio{cache="user"}') == 0.625
    health["caches"] = {"user": {"hits": 1, "misses": 0}}  # the cache started over: its new count is added
    assert _value(metrics.render().decode(), 'mnemostore_cache_hits_total{cache="user"}') == 6.0
