#!/usr/bin/env python3
"""Checks the resolved docker-compose configuration against the project's conventions.

    docker-compose -f docker-compose.yml --profile convert config | python3 deploy/docker/check_compose.py

(Reads the output of `config`, i.e. after interpolation and merge keys, with PyYAML, which
Debian's docker-compose depends on.) Services server, prometheus and convert exist; convert is
only in the "convert" profile, waits for a healthy server and talks to server:50051; the server
listens on 0.0.0.0 inside, publishes on loopback only, has a healthcheck running
`moe-adapter health`, a stop grace longer than --shutdown-grace, a read-only root, /tmp on
tmpfs, no capabilities; prometheus mounts the files promtool checks; grafana mounts the
provisioning and dashboards of deploy/grafana read-only and publishes on loopback only; every build context,
Dockerfile and bind-mounted file exists. Prints one line per problem; exit 1 if any.
"""
import os
import re
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def seconds(v):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(v))
    return (int(m.group(1) or 0) * 60 + int(m.group(2) or 0)) if m else None


def main():
    cfg = yaml.safe_load(sys.stdin)
    problems = []
    services = cfg.get("services", {})
    for name in ("server", "prometheus", "convert"):
        if name not in services:
            problems.append(f"service {name} missing")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    server, prom, convert = services["server"], services["prometheus"], services["convert"]

    for name, svc in services.items():
        if name != "prometheus" and "build" in svc:
            ctx = svc["build"].get("context", ".")
            df = os.path.join(ctx, svc["build"].get("dockerfile", "Dockerfile"))
            if not os.path.isdir(ctx):
                problems.append(f"{name}: build context {ctx} missing")
            if not os.path.isfile(df):
                problems.append(f"{name}: Dockerfile {df} missing")
        if svc.get("read_only") is not True:
            problems.append(f"{name}: root filesystem not read_only")
        if "ALL" not in (svc.get("cap_drop") or []):
            problems.append(f"{name}: cap_drop ALL missing")
        if not any(str(t).split(":")[0] == "/tmp" for t in (svc.get("tmpfs") or [])):
            problems.append(f"{name}: /tmp is not a tmpfs")
        for v in svc.get("volumes") or []:
            src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
            typ = v.get("type") if isinstance(v, dict) else ("bind" if src.startswith((".", "/")) else "volume")
            if typ == "bind" and src and not src.endswith("/models") and not os.path.exists(src):
                problems.append(f"{name}: bind mount source {src} missing")

    cmd = " ".join(map(str, server.get("command") or []))
    if "0.0.0.0:50051" not in cmd or "0.0.0.0:9464" not in cmd:
        problems.append("server: must listen on 0.0.0.0:50051 and 0.0.0.0:9464 inside the container")
    for p in server.get("ports") or []:
        host_ip = p.get("host_ip") if isinstance(p, dict) else (str(p).split(":")[0] if str(p).count(":") == 2 else None)
        if host_ip not in ("127.0.0.1", "::1"):
            problems.append(f"server: port {p} is published beyond loopback")
    hc = server.get("healthcheck") or {}
    if "health" not in " ".join(map(str, hc.get("test") or [])) or "moe-adapter" not in " ".join(map(str, hc.get("test") or [])):
        problems.append("server: healthcheck does not run moe-adapter health")
    grace = re.search(r"--shutdown-grace[= ](\S+)", cmd)
    sgp = seconds(server.get("stop_grace_period", "10s"))
    if grace and sgp is not None and seconds(grace.group(1)) is not None and sgp <= seconds(grace.group(1)):
        problems.append("server: stop_grace_period must exceed --shutdown-grace")

    mounts = " ".join(str(v.get("source", "")) + ":" + str(v.get("target", "")) if isinstance(v, dict) else str(v)
                      for v in prom.get("volumes") or [])
    for f in ("deploy/prometheus/prometheus.yml", "deploy/prometheus/alerts.yml"):
        if f not in mounts:
            problems.append(f"prometheus: does not mount {f}")

    grafana = services.get("grafana")
    if grafana is None:
        problems.append("service grafana missing")
    else:
        mounts = []  # (source, target, read-only), from the long or the short syntax
        for v in grafana.get("volumes") or []:
            if isinstance(v, dict):
                mounts.append((str(v.get("source", "")), str(v.get("target", "")), bool(v.get("read_only"))))
            else:
                parts = str(v).split(":")
                mounts.append((parts[0], parts[1] if len(parts) > 1 else "", len(parts) > 2 and "ro" in parts[2].split(",")))
        for src in ("deploy/grafana/provisioning", "deploy/grafana/dashboards"):
            if not any(m[0].rstrip("/").endswith(src) and m[2] for m in mounts):
                problems.append(f"grafana: does not mount {src} read-only")
        for p in grafana.get("ports") or []:
            host_ip = p.get("host_ip") if isinstance(p, dict) else (str(p).split(":")[0] if str(p).count(":") == 2 else None)
            if host_ip not in ("127.0.0.1", "::1"):
                problems.append(f"grafana: port {p} is published beyond loopback")

    if convert.get("profiles") != ["convert"]:
        problems.append(f"convert: must be only in profile convert (profiles: {convert.get('profiles')})")
    dep = convert.get("depends_on") or {}
    if not (isinstance(dep, dict) and dep.get("server", {}).get("condition") == "service_healthy"):
        problems.append("convert: must depend on server with condition service_healthy")
    ccmd = " ".join(map(str, convert.get("command") or []))
    if "server:50051" not in ccmd or not re.search(r"\b(to-hf|from-hf)\b", ccmd):
        problems.append(f"convert: command must be to-hf|from-hf through server:50051 ({ccmd})")
    if not any("/models" in (v.get("target", "") if isinstance(v, dict) else str(v)) for v in convert.get("volumes") or []):
        problems.append("convert: ./models is not mounted")

    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
