#!/usr/bin/env python3
"""Offline checks of the Grafana dashboards and their provisioning (scripts/validate-deploy.sh).

    python3 deploy/grafana/check_dashboard.py --known "moe_adapter_a moe_adapter_b ..."

For every deploy/grafana/dashboards/*.json: valid JSON; uid, title, schemaVersion; unique panel
ids, each with a gridPos and a title; every query target has a refId (unique in its panel) and an
expr, and uses the dashboard's data source variable; every moe_adapter_* name an expr uses is one
of --known (the names the server exports; tests/deploy/deploy_test.py checks those against a live
/metrics); every expr parses as PromQL (`promtool check rules` on them as recording rules, Grafana
variables replaced). The provisioning files: a Prometheus data source, and a file provider whose
path is where docker-compose.yml mounts the dashboards. Prints one line per problem; exit 1 if any.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--known", required=True, help="metric names the server exports, space separated")
    known = set(ap.parse_args().known.split())
    problems = []
    exprs = []
    dashboards = sorted(glob.glob(os.path.join(HERE, "dashboards", "*.json")))
    if not dashboards:
        problems.append("no dashboard in deploy/grafana/dashboards")
    for path in dashboards:
        name = os.path.relpath(path, REPO)
        try:
            d = json.load(open(path))
        except ValueError as e:
            problems.append(f"{name}: not JSON: {e}")
            continue
        for key in ("uid", "title", "schemaVersion", "panels"):
            if key not in d:
                problems.append(f"{name}: no {key}")
        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            problems.append(f"{name}: needs a `datasource` variable of type datasource, query prometheus")
        ids = set()
        for p in d.get("panels", []):
            where = f"{name}: panel {p.get('id')} ({p.get('title')})"
            if p.get("id") in ids:
                problems.append(f"{where}: id used twice")
            ids.add(p.get("id"))
            if not p.get("title") or not isinstance(p.get("gridPos"), dict):
                problems.append(f"{where}: needs a title and a gridPos")
            refs = set()
            targets = p.get("targets", [])
            if p.get("type") != "row" and not targets:
                problems.append(f"{where}: no query")
            for t in targets:
                if not t.get("refId") or t.get("refId") in refs:
                    problems.append(f"{where}: target without a unique refId")
                refs.add(t.get("refId"))
                for src in (p.get("datasource"), t.get("datasource")):
                    if not (isinstance(src, dict) and src.get("uid") == "${datasource}"):
                        problems.append(f"{where}: data source must be ${{datasource}}, is {src}")
                expr = t.get("expr", "")
                if not expr:
                    problems.append(f"{where}: target {t.get('refId')} has no expr")
                    continue
                for m in sorted(set(re.findall(r"\bmoe_adapter_[a-z0-9_]+", expr))):
                    if m not in known:
                        problems.append(f"{where}: {m} is not a metric the server exports")
                exprs.append((where, expr))
        for v in variables.values():
            q = v.get("query")
            if isinstance(q, dict) and "label_values" in q.get("query", ""):
                for m in re.findall(r"\bmoe_adapter_[a-z0-9_]+", q["query"]):
                    if m not in known:
                        problems.append(f"{name}: variable {v.get('name')}: {m} is not a metric the server exports")

    # PromQL syntax: promtool parses rule expressions offline.
    if exprs and shutil.which("promtool"):
        def concrete(e):
            e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            return re.sub(r"\$\{?(\w+)\}?", ".*", e)
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:expr_{i}", "expr": concrete(e)} for i, (_, e) in enumerate(exprs)]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(rules, f)
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if r.returncode != 0:
            problems.append("a dashboard query is not valid PromQL:\n" + r.stdout + r.stderr)
    elif exprs:
        problems.append("promtool missing: cannot parse the dashboard queries")

    # Provisioning.
    dsfiles = glob.glob(os.path.join(HERE, "provisioning", "datasources", "*.yml"))
    sources = [s for f in dsfiles for s in (yaml.safe_load(open(f)) or {}).get("datasources", [])]
    if not any(s.get("type") == "prometheus" and s.get("url") for s in sources):
        problems.append("provisioning/datasources: no Prometheus data source with a url")
    provfiles = glob.glob(os.path.join(HERE, "provisioning", "dashboards", "*.yml"))
    paths = [p.get("options", {}).get("path") for f in provfiles for p in (yaml.safe_load(open(f)) or {}).get("providers", [])]
    compose = yaml.safe_load(open(os.path.join(REPO, "docker-compose.yml")))
    mounts = compose.get("services", {}).get("grafana", {}).get("volumes", [])
    targets = {str(v).split(":")[1] for v in mounts if str(v).split(":")[0] == "./deploy/grafana/dashboards"}
    if not paths or any(p not in targets for p in paths):
        problems.append(f"provisioning/dashboards: provider path {paths} is not where docker-compose.yml mounts "
                        f"deploy/grafana/dashboards ({sorted(targets)})")
    for p in problems:
        print(p)
    print(f"{len(dashboards)} dashboard(s), {len(exprs)} queries checked")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
