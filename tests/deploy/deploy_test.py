#!/usr/bin/python3
"""Deployment recipes run for real, outside Docker and a cluster (issue 11, part 5).

    deploy_test.py compose-convert CLI SERVER   # docs/deploy.md's compose convert steps as UID 65532
    deploy_test.py metrics-names SERVER         # every metric the dashboard and rules name is exported

compose-convert: prepares ./models as the steps in docs/deploy.md say (the block after the
"compose-convert-steps" marker: mkdir, chmod, cp run as written, as the owner of ./models), then
runs each `docker compose --profile convert run --rm convert` line as the command line the
convert service of docker-compose.yml resolves to (entrypoint + command, ${VAR:-default}
interpolated with the line's VAR=value prefixes), with /models the prepared folder and
server:50051 a real moe-adapter-server, under `setpriv` as the service's user (UID/GID 65532, no
groups), as the container would. Outputs must equal a conversion run as root, with nothing
left beside them. Needs root and setpriv; exit 77 (skipped) otherwise.

metrics-names: starts the real server with --metrics-listen 127.0.0.1:0, fetches /metrics, and
checks that every moe_adapter_* name in deploy/prometheus/*.yml and deploy/grafana/dashboards/*.json
is exported, and that every requests_total code the rules name exists at 0 for every rpc before
any request (so increase() sees the first failure).

Uses Debian's python3 (PyYAML comes with docker-compose's dependencies). Prints PASS/FAIL lines.
"""
import filecmp
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP = 77
failures = []


def check(ok, what):
    print(("PASS  " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


class Server:
    """The real server on loopback ports; its stderr in a temporary file."""

    def __init__(self, binary, *args):
        self.log = tempfile.NamedTemporaryFile(prefix="moe-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", *args], stderr=self.log)
        self.port = self.metrics_port = None
        for _ in range(300):
            text = open(self.log.name).read()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)(?: \(metrics on port (\d+)\))?", text)
            if m:
                self.port = int(m.group(1))
                self.metrics_port = int(m.group(2)) if m.group(2) else None
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + open(self.log.name).read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        os.unlink(self.log.name)


def interpolate(text, env):
    """Compose's ${VAR:-default} and ${VAR} with `env`."""
    def sub(m):
        name, default = m.group(1), m.group(3) or ""
        return env.get(name) or default
    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", sub, str(text))


def doc_steps():
    """The shell lines of the docs block after the compose-convert-steps marker."""
    text = open(os.path.join(REPO, "docs", "deploy.md")).read()
    m = re.search(r"<!-- compose-convert-steps[^>]*-->\s*```sh\n(.*?)```", text, re.S)
    if not m:
        raise RuntimeError("docs/deploy.md: no ```sh block after <!-- compose-convert-steps -->")
    lines = []
    for line in m.group(1).splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line:
            lines.append(line)
    return lines


def compose_convert(cli, server_bin):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP  needs root and setpriv (util-linux) to run the CLI as UID 65532")
        return SKIP
    compose = yaml.safe_load(open(os.path.join(REPO, "docker-compose.yml")))
    svc = compose["services"]["convert"]
    work = tempfile.mkdtemp(prefix="moe-compose-")
    os.chmod(work, 0o755)  # traversable by 65532, as a host folder is
    server = Server(server_bin)
    try:
        # Sources the docs' /path/to/... stand for: a native checkpoint and an HF one.
        fixture = os.path.join(REPO, "tests", "data", "tiny-qwen3-moe", "hf-bf16-sharded")
        native = os.path.join(work, "src-native")
        subprocess.run([cli, "from-hf", "--input", fixture, "--output", native, "--quiet"], check=True)
        host = {"/path/to/native-checkpoint": native, "/path/to/hf-checkpoint": fixture}
        ran = 0
        for line in doc_steps():
            words = shlex.split(line)
            env = {}
            while words and re.fullmatch(r"\w+=.*", words[0]):
                k, v = words.pop(0).split("=", 1)
                env[k] = v
            if words[:2] in (["docker", "compose"], ["docker-compose"]):
                if "convert" not in words or "run" not in words:
                    continue
                user = interpolate(svc["user"], env).split(":")
                argv = [*svc["entrypoint"], *[interpolate(a, env) for a in svc["command"]]]
                mounts = [v for v in svc["volumes"] if str(v).split(":")[1] == "/models"]
                check(len(mounts) == 1 and str(mounts[0]).split(":")[0] == "./models", "convert mounts ./models at /models")
                argv = [a.replace("=/models/", "=" + work + "/models/").replace("server:50051", f"127.0.0.1:{server.port}")
                        for a in argv]
                argv[0] = cli if argv[0] == "moe-adapter" else argv[0]
                cmd = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *argv]
                r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
                check(r.returncode == 0, f"as UID {user[0]}: {' '.join(argv[1:])}\n        {r.stderr.strip()}")
                # The same conversion as root, for the bytes to compare.
                out = next(a.split("=", 1)[1] for a in argv if a.startswith("--output="))
                ref = os.path.join(work, "ref-" + os.path.basename(out))
                ref_argv = [a if not a.startswith("--output=") else "--output=" + ref for a in argv]
                subprocess.run(ref_argv, check=True, capture_output=True)
                if r.returncode == 0:
                    names = sorted(os.listdir(out))
                    check(names == sorted(os.listdir(ref)), f"{out}: the files a root run writes ({names})")
                    same = all(filecmp.cmp(os.path.join(out, n), os.path.join(ref, n), shallow=False) for n in names)
                    check(same, f"{out}: byte-identical to the root run")
                    owners = {os.stat(os.path.join(out, n)).st_uid for n in names}
                    check(owners == {int(user[0])}, f"{out}: written by UID {user[0]} (owners {owners})")
                ran += 1
            else:
                for k, v in host.items():
                    line = line.replace(k, v)
                subprocess.run(["sh", "-ec", "umask 022; " + line], cwd=work, check=True)
        check(ran >= 2, f"the docs run both conversions (ran {ran})")
        left = sorted(n for n in os.listdir(os.path.join(work, "models")) if n.startswith("."))
        check(not left, f"nothing left beside the outputs in models/ ({left})")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def metrics_names(server_bin):
    server = Server(server_bin, "--metrics-listen", "127.0.0.1:0")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    finally:
        server.stop()
    exported = set()
    for line in body.splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m and not line.startswith("#"):
            exported.add(m.group(1))
    files = sorted(glob.glob(os.path.join(REPO, "deploy", "prometheus", "*.yml")) +
                   glob.glob(os.path.join(REPO, "deploy", "grafana", "dashboards", "*.json")))
    check(any(f.endswith(".json") for f in files), "a Grafana dashboard is there to check")
    for f in files:
        names = set(re.findall(r"\bmoe_adapter_[a-z0-9_]+", open(f).read()))
        missing = sorted(n for n in names if n not in exported)
        check(not missing, f"{os.path.relpath(f, REPO)}: {len(names)} metric names, all exported{' (missing: ' + ', '.join(missing) + ')' if missing else ''}")
    # The codes the rules match, each at 0 for every rpc before any request.
    alerts = open(os.path.join(REPO, "deploy", "prometheus", "alerts.yml")).read()
    codes = set()
    for m in re.finditer(r'code[!=]~"([A-Z_|]+)"', alerts):
        codes.update(m.group(1).split("|"))
    check(len(codes) >= 10, f"alerts.yml names {len(codes)} codes")
    for rpc in ("ToHF", "FromHF", "ConvertTensor", "GetInfo"):
        absent = sorted(c for c in codes if f'moe_adapter_requests_total{{code="{c}",rpc="{rpc}"}} 0' not in body)
        check(not absent, f"requests_total{{rpc={rpc}}} exported at 0 for every code the rules name{' (absent: ' + ', '.join(absent) + ')' if absent else ''}")
    return 1 if failures else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "compose-convert":
        sys.exit(compose_convert(os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])))
    if len(sys.argv) == 3 and sys.argv[1] == "metrics-names":
        sys.exit(metrics_names(os.path.abspath(sys.argv[2])))
    print(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main()
