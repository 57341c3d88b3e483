#!/usr/bin/env python3
"""Structural checks of the project's Dockerfiles (hadolint is not packaged for Debian 12).

    python3 deploy/docker/check_dockerfile.py deploy/docker/Dockerfile [...]

For each file: multi-stage; the build stage runs scripts/install-deps.sh and the same CMake
configure/build/install commands CI runs; the final stage installs the runtime packages and no
-dev package, copies /opt/moe-adapter from the build stage, runs as a numeric non-root USER,
EXPOSEs 50051 and 9464, has a HEALTHCHECK running `moe-adapter health`, and starts
moe-adapter-server; base images are pinned (no :latest); files COPYed from the context exist
and are not excluded by .dockerignore. Prints one line per problem; exit 1 if any.
"""
import json
import os
import re
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNTIME_PACKAGES = ["libgrpc++1.51", "libgrpc29", "libprotobuf32", "libabsl20220623",
                    "libprometheus-cpp-core1.0", "libprometheus-cpp-pull1.0", "libre2-9"]
CMAKE = [
    "cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_ADAPTER_BUILD_TESTS=OFF -DMOE_ADAPTER_BUILD_BENCH=OFF",
    "cmake --build build",
    "cmake --install build --prefix /opt/moe-adapter",
]


def instructions(text):
    """(keyword, argument) pairs, continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        kw, _, arg = cur.partition(" ")
        out.append((kw.upper(), " ".join(arg.split())))
        cur = ""
    if cur:
        out.append(("<unterminated>", cur))
    return out


def dockerignore_patterns():
    path = os.path.join(REPO, ".dockerignore")
    if not os.path.exists(path):
        return None
    pats = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s and not s.startswith("#"):
            pats.append(s.rstrip("/"))
    return pats


def ignored(rel, pats):
    import fnmatch
    parts = rel.split("/")
    for p in pats:
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatch("/".join(parts[:i]), p.lstrip("/")) or fnmatch.fnmatch("/".join(parts[:i]), p.replace("**/", "")):
                return True
    return False


def check(path):
    problems = []
    text = open(path, encoding="utf-8").read()
    ins = instructions(text)
    args = {k: v for k, v in ((a.partition("=")[0], a.partition("=")[2]) for kw, a in ins if kw == "ARG") if v}

    def expand(s):
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)

    stages, cur = [], None
    for kw, arg in ins:
        if kw == "<unterminated>":
            problems.append("a line ends with a continuation backslash and nothing follows")
        if kw == "FROM":
            cur = {"from": expand(arg), "ins": []}
            stages.append(cur)
        elif cur is not None:
            cur["ins"].append((kw, arg))
    if len(stages) < 2:
        problems.append("not multi-stage (need a build stage and a runtime stage)")
        return problems
    for st in stages:
        image = st["from"].split(" AS ")[0].split(" as ")[0].strip()
        if image.endswith(":latest") or (":" not in image.split("/")[-1] and "@" not in image and not image.startswith("$")
                                         and image.split()[0] not in [s["from"].split()[-1] for s in stages]):
            problems.append(f"base image {image} is not pinned to a tag")
    build = next((s for s in stages if s["from"].split()[-1] == "build"), None)
    if build is None:
        problems.append('no stage named "build"')
    else:
        runs = [a for k, a in build["ins"] if k == "RUN"]
        if not any("scripts/install-deps.sh" in r for r in runs):
            problems.append("build stage does not run scripts/install-deps.sh")
        joined = " && ".join(runs)
        for c in CMAKE:
            if c not in joined:
                problems.append(f"build stage lacks the CI command: {c}")
    final = stages[-1]
    fins = final["ins"]
    runs = " ".join(a for k, a in fins if k == "RUN")
    for pkg in RUNTIME_PACKAGES:
        if not re.search(r"(^|\s)" + re.escape(pkg) + r"(\s|$)", runs):
            problems.append(f"runtime stage does not install {pkg}")
    if re.search(r"\s\S+-dev(\s|$)", runs) or "build-essential" in runs:
        problems.append("runtime stage installs development packages")
    if "--no-install-recommends" not in runs:
        problems.append("runtime apt-get install without --no-install-recommends")
    if "rm -rf /var/lib/apt/lists" not in runs:
        problems.append("runtime stage keeps the apt lists")
    if not any(k == "COPY" and "--from=build" in a and "/opt/moe-adapter" in a for k, a in fins):
        problems.append("runtime stage does not COPY --from=build /opt/moe-adapter")
    users = [a for k, a in fins if k == "USER"]
    if not users:
        problems.append("final stage has no USER (runs as root)")
    else:
        user = users[-1].split(":")[0]
        if user in ("root", "0"):
            problems.append(f"final USER is root ({users[-1]})")
        elif not user.isdigit():
            problems.append(f"final USER {users[-1]} is not numeric (Kubernetes runAsNonRoot cannot verify a name)")
    exposed = set(" ".join(a for k, a in fins if k == "EXPOSE").replace("/tcp", "").split())
    for port in ("50051", "9464"):
        if port not in exposed:
            problems.append(f"EXPOSE {port} missing")
    hc = [a for k, a in fins if k == "HEALTHCHECK"]
    if not hc:
        problems.append("no HEALTHCHECK")
    elif not re.search(r'moe-adapter"?,?\s*"?health', hc[-1]):
        problems.append("HEALTHCHECK does not run `moe-adapter health`")
    ep = [a for k, a in fins if k == "ENTRYPOINT"]
    if not ep or "moe-adapter-server" not in ep[-1]:
        problems.append("ENTRYPOINT is not moe-adapter-server")
    for kw in ("ENTRYPOINT", "CMD", "HEALTHCHECK"):
        for k, a in fins:
            if k == kw:
                body = a.split("CMD", 1)[1].strip() if kw == "HEALTHCHECK" and "CMD" in a else a
                try:
                    json.loads(body)
                except ValueError:
                    problems.append(f"{kw} is not in exec (JSON array) form: {body}")
    cmd = [a for k, a in fins if k == "CMD"]
    if cmd and "0.0.0.0:50051" not in cmd[-1]:
        problems.append("CMD does not listen on 0.0.0.0:50051 (the default 127.0.0.1 is unreachable from outside the container)")
    pats = dockerignore_patterns()
    if pats is None:
        problems.append(".dockerignore missing")
    else:
        for must in (".git", "build"):
            if must not in pats:
                problems.append(f".dockerignore does not exclude {must}")
    for st in stages:
        for k, a in st["ins"]:
            if k in ("COPY", "ADD") and "--from=" not in a:
                srcs = [s for s in a.split()[:-1] if not s.startswith("--")]
                for s in srcs:
                    if s in (".", "./"):
                        continue
                    if not os.path.exists(os.path.join(REPO, s)):
                        problems.append(f"COPY source {s} does not exist")
                    elif pats and ignored(s, pats):
                        problems.append(f"COPY source {s} is excluded by .dockerignore")
    return problems


def main():
    bad = 0
    for path in sys.argv[1:]:
        problems = check(path)
        rel = os.path.relpath(path, REPO)
        for p in problems:
            print(f"{rel}: {p}")
        bad += len(problems)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
