#!/usr/bin/env node
// Proves validate.cjs fails loudly: copies deploy/k8s to a temporary folder, breaks it in one
// known way at a time, and expects validate.cjs to exit 1 naming the problem.
// Prints `k8s-selftest: N checks passed, M failed`.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn } = require("child_process");

const SRC = path.resolve(__dirname, "..");
const VALIDATE = path.join(__dirname, "validate.cjs");

function edit(file, from, to) {
  return (root) => {
    const p = path.join(root, file);
    const text = fs.readFileSync(p, "utf8");
    if (!text.includes(from)) throw new Error(`selftest setup: "${from}" not in ${file}`);
    fs.writeFileSync(p, text.replace(from, to));
  };
}
const CASES = [
  ["misspelt field", edit("base/deployment.yaml", "runAsNonRoot: true\n        runAsUser", "runAsNonroot: true\n        runAsUser"), "unknown field /spec/template/spec/securityContext/runAsNonroot"],
  ["wrong type", edit("base/deployment.yaml", "replicas: 2", 'replicas: "2"'), "replicas must be integer"],
  ["YAML 1.1 octal", edit("base/deployment.yaml", "defaultMode: 288", "defaultMode: 0440"), "reads differently under YAML 1.1 and 1.2"],
  ["missing resource file", edit("base/kustomization.yaml", "  - pdb.yaml", "  - pdb.yaml\n  - missing.yaml"), "resource missing.yaml does not exist"],
  ["orphan manifest", (r) => fs.writeFileSync(path.join(r, "base/extra.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), "base/extra.yaml is not listed anywhere"],
  ["gRPC probe with TLS", edit("overlays/tls/patch-deployment-tls.yaml", "          readinessProbe:\n            grpc: null\n", "          readinessProbe:\n"), "native gRPC probe but the server uses TLS"],
  ["flag given twice", edit("overlays/tls/patch-args-tls.yaml", "value: --tls-client-ca=/etc/moe-adapter/tls/ca.crt", "value: --device=cpu"), "flag --device given twice"],
  ["unknown server flag", edit("base/deployment.yaml", "--shutdown-grace=30s", "--shutdown-grace-period=30s"), "unknown server flag --shutdown-grace-period"],
  ["writable root filesystem", edit("base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"), "readOnlyRootFilesystem must be true"],
  ["capabilities kept", edit("base/deployment.yaml", 'drop: ["ALL"]', 'drop: ["NET_RAW"]'), "capabilities must drop ALL"],
  ["no memory limit", edit("base/deployment.yaml", "              cpu: \"8\"\n              memory: 12Gi\n", "              cpu: \"8\"\n"), "resources.limits.memory missing"],
  ["real-looking secret", edit("base/secret-auth.yaml", "CHANGE-ME-placeholder-token-not-a-secret", "s3cr3t"), "CHANGE-ME placeholders only"],
  ["GPU without CUDA device", edit("overlays/gpu/patch-deployment-gpu.yaml", "value: cuda", "value: cpu"), "nvidia.com/gpu requested but --device cpu"],
  ["Service selects nothing", edit("base/service.yaml", "app.kubernetes.io/component: server", "app.kubernetes.io/component: serverr"), "selector matches no workload"],
  ["probe on a Unix-socket-only server", edit("examples/sidecar/training-job.yaml", "          startupProbe:\n            exec:\n              command: [\"moe-adapter\", \"health\", \"--server=unix:///var/run/moe-adapter/adapter.sock\"]", "          startupProbe:\n            grpc:\n              port: 50051"), "dials the pod IP but the server listens on unix:///var/run/moe-adapter/adapter.sock"],
  ["probe on loopback listener", (root) => {
    edit("examples/sidecar/training-job.yaml", "- --listen=unix:", "- --listen=127.0.0.1:50051\n            - --listen=unix:")(root);
    edit("examples/sidecar/training-job.yaml", "          startupProbe:\n            exec:\n              command: [\"moe-adapter\", \"health\", \"--server=unix:///var/run/moe-adapter/adapter.sock\"]", "          startupProbe:\n            grpc:\n              port: 50051")(root);
  }, "dials the pod IP but the server listens on 127.0.0.1:50051, unix:///var/run/moe-adapter/adapter.sock"],
  ["memory budget above the limit", edit("base/deployment.yaml", "--max-total-memory=8GiB", "--max-total-memory=16GiB"), "leaves less than 20% of the 12Gi memory limit"],
  ["bad size", edit("base/deployment.yaml", "--max-total-memory=8GiB", "--max-total-memory=8GiBs"), "is not a size the server accepts"],
  ["NetworkPolicy admits everyone", edit("base/networkpolicy.yaml", "        - namespaceSelector: {}\n          podSelector:\n            matchLabels:\n              moe-adapter/client: \"true\"\n", "        - namespaceSelector: {}\n"), "a peer without pod labels admits every pod"],
  ["NetworkPolicy opens an undeclared port", edit("base/networkpolicy.yaml", "        - port: metrics", "        - port: 8080"), "port 8080 is not a declared port"],
  ["ServiceMonitor scrapes an unknown port", edit("overlays/monitoring/servicemonitor.yaml", "    - port: metrics", "    - port: http-metrics"), "endpoint port http-metrics is not a named port"],
  ["ServiceMonitor misspelt field", edit("overlays/monitoring/servicemonitor.yaml", "scrapeTimeout: 10s", "scrapeTimout: 10s"), "unknown field /spec/endpoints/0/scrapeTimout"],
  ["unsupported kustomize field", edit("base/kustomization.yaml", "namespace: moe-adapter", "namespace: moe-adapter\ncommonLabels:\n  a: b"), 'field "commonLabels" is not supported'],
];

function runCase([name, mutate, expect]) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-selftest-"));
  const root = path.join(tmp, "deploy", "k8s");
  fs.cpSync(SRC, root, { recursive: true, filter: (s) => !s.startsWith(__dirname) });
  const done = (problem) => { fs.rmSync(tmp, { recursive: true, force: true }); return { name, problem }; };
  try { mutate(root); } catch (e) { return Promise.resolve(done(e.message)); }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VALIDATE, root], { env: process.env });
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.on("close", (code) => {
      if (code !== 1) resolve(done(`exit ${code}, expected 1`));
      else if (!out.includes(expect)) resolve(done(`output lacks "${expect}":\n${out.split("\n").filter((l) => l.includes("FAIL") || l.includes("- ")).join("\n")}`));
      else resolve(done(null));
    });
  });
}

(async () => {
  const results = [];
  const queue = CASES.slice();
  const workers = Array.from({ length: Math.max(2, os.cpus().length) }, async () => {
    while (queue.length) results.push(await runCase(queue.shift()));
  });
  await Promise.all(workers);
  let passed = 0;
  let failed = 0;
  for (const [name] of CASES) {
    const r = results.find((x) => x.name === name);
    if (r.problem) { failed++; console.log(`  FAIL  rejects: ${name}: ${r.problem}`); } else { passed++; console.log(`  ok    rejects: ${name}`); }
  }
  console.log(`k8s-selftest: ${passed} checks passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
