"""deploy/grafana-neuroq.json asks only for series the daemon serves.

Every PromQL expression of the dashboard (panel targets and template
variables) is taken apart: the metric names it selects must be samples of a
real /metrics scrape of a test daemon that ran jobs (parsed with
prometheus_client's parser, as test_metrics.py does), the labels it matches
on or groups by must be labels of those samples, and what is left must be
PromQL functions and keywords (so a misspelt or unprefixed name fails too).
"""

import json
import re
from pathlib import Path

import pytest

from conftest import LONG_JOB, make_data, wait_all
from test_metrics import http_daemon, scrape

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-neuroq.json"

# PromQL functions, aggregations and keywords the dashboard may use
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "rate", "increase",
    "irate", "histogram_quantile", "time", "label_values", "topk", "bottomk",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "clamp_min", "clamp_max", "abs", "delta", "deriv", "offset",
}
# labels Prometheus adds to every scraped series
TARGET_LABELS = {"instance", "job"}
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def dashboard_exprs(dash):
    """(where, expr) for each PromQL expression of the dashboard."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable {v['name']}", q))
    return out


def parse_expr(expr):
    """{metric: set of labels it is matched on}, labels it groups by, and
    the other identifiers."""
    metrics, groups = {}, set()
    e = re.sub(r"\$__\w+|\$\w+", "X", expr)  # Grafana's variables
    for m in re.finditer(rf"({NAME})\s*\{{([^}}]*)\}}", e):
        labels = set(re.findall(rf"({NAME})\s*(?:=~|!~|!=|=)\s*\"", m.group(2)))
        metrics.setdefault(m.group(1), set()).update(labels)
    e = re.sub(r"\{[^}]*\}", " ", e)  # matchers
    e = re.sub(r"\"[^\"]*\"", " ", e)  # strings
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", e):
        groups.update(x.strip() for x in m.group(1).split(",") if x.strip())
    e = re.sub(r"\b(by|without)\s*\([^)]*\)", r" \1 ", e)
    # label_values(metric, label): the label is a label of the metric
    for m in re.finditer(rf"label_values\(\s*({NAME})\s*,\s*({NAME})\s*\)", e):
        metrics.setdefault(m.group(1), set()).add(m.group(2))
        e = e.replace(m.group(0), f"label_values({m.group(1)})")
    words = set(re.findall(rf"(?<![\w.]){NAME}", e))
    others = words - set(metrics) - PROMQL_WORDS - {"X"}
    for w in list(others):
        if w.startswith("neuroq_"):
            metrics.setdefault(w, set())
            others.discard(w)
    return metrics, groups, others


def test_parse_expr_finds_names_labels_and_strays():
    m, g, o = parse_expr('histogram_quantile(0.9, sum by (le, type) (rate('
                         'neuroq_job_run_seconds_bucket{instance=~"$instance"}'
                         '[$__rate_interval])))')
    assert m == {"neuroq_job_run_seconds_bucket": {"instance"}}
    assert g == {"le", "type"} and o == set()
    m, g, o = parse_expr('sum(neuroq_jobs{state="queued"}) / node_filesystem_free')
    assert m == {"neuroq_jobs": {"state"}} and o == {"node_filesystem_free"}
    m, g, o = parse_expr("label_values(neuroq_build_info, instance)")
    assert m == {"neuroq_build_info": {"instance"}} and o == set()


def test_dashboard_uses_served_metrics(daemon_factory):
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["panels"]
    d = http_daemon(daemon_factory)
    c = d.client()
    # jobs that leave every kind of series behind: one done, one canceled
    # (an error code), a refused submit (a request error)
    done = c.submit("gsn", inputs={"data": make_data(3, 10, 2)}).id
    canceled = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=2)}).id
    c.cancel(canceled)
    with pytest.raises(Exception):
        c.submit("gsn", inputs={"data": make_data(3, 10, 2)}, device="cuda:7")
    wait_all(c, [done, canceled])
    c.close()
    _, samples = scrape(d)
    served = {}
    for name, labels in samples:
        served.setdefault(name, set()).update(k for k, _ in labels)

    exprs = dashboard_exprs(dash)
    assert len(exprs) >= 20
    used = set()
    for where, expr in exprs:
        metrics, groups, others = parse_expr(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        assert not others, f"{where}: unknown names {others} in {expr!r}"
        for name, labels in metrics.items():
            assert name in served, f"{where}: {name} is not served (expr {expr!r})"
            missing = labels - served[name] - TARGET_LABELS
            assert not missing, f"{where}: {name} has no label {missing}"
            used.add(name)
        have = set().union(*(served[n] for n in metrics)) | TARGET_LABELS
        assert groups <= have, f"{where}: groups by {groups - have}"
    # the panels the dashboard promises
    for name in ("neuroq_jobs", "neuroq_job_queue_wait_seconds_bucket",
                 "neuroq_job_run_seconds_bucket", "neuroq_device_memory_granted_bytes",
                 "neuroq_device_memory_total_bytes", "neuroq_user_jobs",
                 "neuroq_job_errors_total", "neuroq_worker_restarts_total",
                 "neuroq_state_dir_free_bytes"):
        assert name in used, name
    # and it quantiles the histograms rather than plotting raw buckets
    assert sum("histogram_quantile(" in e for _, e in exprs) >= 6
