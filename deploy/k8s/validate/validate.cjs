#!/usr/bin/env node
// Offline validation of deploy/k8s (no cluster, no kubectl needed).
//
//   NODE_PATH=<dir>/node_modules node deploy/k8s/validate/validate.cjs [--kubectl] [ROOT]
//
// For every kustomization under ROOT (default: deploy/k8s next to this script) it
//   1. builds the kustomization itself (a small subset of kustomize: resources, namespace,
//      images, patches as strategic merge or JSON 6902); any other kustomization field is an
//      error, so a feature this builder does not know fails loudly instead of being ignored;
//   2. validates every resulting object against the Kubernetes OpenAPI schema with
//      kubernetes-models (`new Kind(obj).validate()`), and also rejects fields the schema does
//      not know (the schema itself accepts them silently, e.g. a misspelt `runAsNonroot`);
//   3. checks this project's conventions: restricted securityContext, requests and limits,
//      /tmp on an emptyDir, one handler per probe, no native gRPC/TCP probe where the server
//      uses TLS or listens on loopback only (spec §15.8), known and non-repeated server flags,
//      references between objects (Secrets, ServiceAccount, selectors, ports), placeholder-only
//      Secrets;
//   4. checks the files: every path a kustomization lists exists, every YAML file under ROOT is
//      used by some kustomization, YAML scalars read the same under YAML 1.1 and 1.2;
//   5. with --kubectl and a working `kubectl kustomize`, compares its output with step 1's.
// Prints one line per kustomization (-v: per check), failures in full, and `k8s: N checks passed, M failed`; exits 1 on any failure.
"use strict";

const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");
const YAML = require("yaml");

const args = process.argv.slice(2);
const useKubectl = args.includes("--kubectl");
const verbose = args.includes("-v") || args.includes("--verbose");
const ROOT = path.resolve(args.find((a) => !a.startsWith("--")) || path.join(__dirname, ".."));
const REPO = path.resolve(ROOT, "..", "..");
const rel = (p) => path.relative(REPO, p) || ".";

let passed = 0;
let failed = 0;
function report(name, errors) {
  if (errors.length === 0) {
    passed++;
    if (verbose) console.log(`  ok    ${name}`);
  } else {
    failed++;
    console.log(`  FAIL  ${name}`);
    for (const e of errors) console.log(`          - ${e}`);
  }
}

// ---------------------------------------------------------------- YAML loading
// Kubernetes decodes manifests as YAML 1.1 (yes/no/on/off are booleans, 0440 is octal);
// kustomize's own reader is YAML 1.2. A scalar the two read differently is an error.
function loadYaml(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs12 = YAML.parseAllDocuments(text, { version: "1.2", merge: true, uniqueKeys: true });
  const docs11 = YAML.parseAllDocuments(text, { version: "1.1", merge: true, uniqueKeys: true });
  const errors = [];
  const out = [];
  docs12.forEach((d, i) => {
    for (const e of d.errors) errors.push(`${rel(file)} document ${i + 1}: ${e.message}`);
    const v12 = d.toJS({ maxAliasCount: 100 });
    const v11 = docs11[i] ? docs11[i].toJS({ maxAliasCount: 100 }) : undefined;
    if (canon(v12) !== canon(v11)) {
      errors.push(`${rel(file)} document ${i + 1}: a scalar reads differently under YAML 1.1 and 1.2 ` +
        `(quote yes/no/on/off, write numbers like 0440 in decimal): ${firstDiff(v11, v12, "")}`);
    }
    if (v12 !== null && v12 !== undefined) out.push(v12);
  });
  return { docs: out, errors };
}
const canon = (x) => JSON.stringify(x, (k, v) => (v && typeof v === "object" && !Array.isArray(v)
  ? Object.fromEntries(Object.keys(v).sort().map((kk) => [kk, v[kk]])) : v));
function firstDiff(a, b, p, la = "YAML 1.1", lb = "YAML 1.2") {
  if (canon(a) === canon(b)) return null;
  if (a && b && typeof a === "object" && typeof b === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDiff(a[k], b[k], `${p}/${k}`, la, lb);
      if (d) return d;
    }
  }
  return `${p || "/"}: ${la} ${JSON.stringify(a)} vs ${lb} ${JSON.stringify(b)}`;
}

// ---------------------------------------------------------------- mini kustomize
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
  "StorageClass", "CustomResourceDefinition", "PriorityClass", "RuntimeClass", "IngressClass"]);
const KNOWN_KUSTOMIZATION_FIELDS = new Set(["apiVersion", "kind", "namespace", "resources", "patches", "images"]);
const usedFiles = new Set();
const clone = (x) => JSON.parse(JSON.stringify(x));
const idOf = (o) => `${o.kind}/${(o.metadata && o.metadata.name) || "?"}`;

function build(dir, stack = []) {
  const kfile = path.join(dir, "kustomization.yaml");
  const errors = [];
  if (!fs.existsSync(kfile)) return { resources: [], errors: [`${rel(dir)}: no kustomization.yaml`] };
  if (stack.includes(dir)) return { resources: [], errors: [`${rel(dir)}: kustomization cycle`] };
  usedFiles.add(kfile);
  const loaded = loadYaml(kfile);
  errors.push(...loaded.errors);
  const k = loaded.docs[0] || {};
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") {
    errors.push(`${rel(kfile)}: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization`);
  }
  for (const f of Object.keys(k)) {
    if (!KNOWN_KUSTOMIZATION_FIELDS.has(f)) {
      errors.push(`${rel(kfile)}: field "${f}" is not supported by this validator (extend validate.cjs)`);
    }
  }
  let resources = [];
  for (const r of k.resources || []) {
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) { errors.push(`${rel(kfile)}: resource ${r} does not exist`); continue; }
    if (fs.statSync(p).isDirectory()) {
      const sub = build(p, [...stack, dir]);
      errors.push(...sub.errors);
      resources.push(...sub.resources);
    } else {
      usedFiles.add(p);
      const l = loadYaml(p);
      errors.push(...l.errors);
      for (const d of l.docs) {
        if (!d || typeof d !== "object" || !d.kind || !d.apiVersion || !d.metadata || !d.metadata.name) {
          errors.push(`${rel(p)}: a document without apiVersion, kind and metadata.name`);
          continue;
        }
        resources.push({ obj: d, file: rel(p) });
      }
    }
  }
  for (const patch of k.patches || []) {
    if (!patch.path) { errors.push(`${rel(kfile)}: only patches with "path" are supported`); continue; }
    const p = path.resolve(dir, patch.path);
    if (!fs.existsSync(p)) { errors.push(`${rel(kfile)}: patch ${patch.path} does not exist`); continue; }
    usedFiles.add(p);
    const l = loadYaml(p);
    errors.push(...l.errors);
    const body = l.docs[0];
    if (Array.isArray(body)) {
      // JSON 6902: needs a target.
      const t = patch.target;
      if (!t || !t.kind || !t.name) { errors.push(`${rel(p)}: a JSON 6902 patch needs target kind and name`); continue; }
      const hits = resources.filter((r) => matchTarget(r.obj, t));
      if (hits.length !== 1) { errors.push(`${rel(p)}: target ${t.kind}/${t.name} matches ${hits.length} resources`); continue; }
      try { hits[0].obj = jsonPatch(hits[0].obj, body); } catch (e) { errors.push(`${rel(p)}: ${e.message}`); }
    } else if (body && typeof body === "object") {
      const t = patch.target || { kind: body.kind, name: body.metadata && body.metadata.name };
      const hits = resources.filter((r) => matchTarget(r.obj, t));
      if (hits.length !== 1) { errors.push(`${rel(p)}: patch target ${t.kind}/${t.name} matches ${hits.length} resources`); continue; }
      hits[0].obj = smp(hits[0].obj, body);
    } else {
      errors.push(`${rel(p)}: empty patch`);
    }
  }
  for (const img of k.images || []) {
    for (const r of resources) {
      for (const c of containersOf(r.obj)) {
        if (imageName(c.image) === img.name) {
          const tag = img.newTag !== undefined ? `:${img.newTag}` : imageTag(c.image);
          c.image = `${img.newName || img.name}${img.digest ? "@" + img.digest : tag}`;
        }
      }
    }
  }
  if (k.namespace) {
    for (const r of resources) {
      if (!CLUSTER_SCOPED.has(r.obj.kind)) r.obj.metadata.namespace = k.namespace;
    }
  }
  const seen = new Map();
  for (const r of resources) {
    const id = `${r.obj.kind}/${r.obj.metadata.namespace || ""}/${r.obj.metadata.name}`;
    if (seen.has(id)) errors.push(`${rel(kfile)}: ${idOf(r.obj)} defined twice (${seen.get(id)}, ${r.file})`);
    seen.set(id, r.file);
  }
  resources = resources.map((r) => ({ obj: clone(r.obj), file: r.file }));
  return { resources, errors };
}
function matchTarget(o, t) {
  const [g, v] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  return o.kind === t.kind && o.metadata.name === t.name &&
    (t.group === undefined || t.group === g) && (t.version === undefined || t.version === v);
}
function imageName(img) {
  const at = img.indexOf("@");
  const s = at >= 0 ? img.slice(0, at) : img;
  const colon = s.lastIndexOf(":");
  return colon > s.lastIndexOf("/") ? s.slice(0, colon) : s;
}
function imageTag(img) {
  const n = imageName(img);
  return img.slice(n.length);
}
// Strategic merge patch: maps merge (null deletes), lists of objects merge by their key,
// other lists are replaced, as kustomize does for the fields used here.
const MERGE_KEYS = { containers: "name", initContainers: "name", volumes: "name", volumeMounts: "mountPath",
  env: "name", ports: "containerPort", imagePullSecrets: "name" };
function smp(base, patch, field) {
  if (Array.isArray(patch)) {
    const key = MERGE_KEYS[field];
    if (!key || !Array.isArray(base)) return clone(patch);
    // Order as Kubernetes' strategic merge does: patched items in patch order, items only in
    // the base in base order, interleaved by base position; items new in the patch first.
    const baseIndex = (x) => base.findIndex((b) => b && x && b[key] === x[key]);
    const patched = patch.map((item) => {
      const i = baseIndex(item);
      return i >= 0 ? smp(base[i], item, undefined) : clone(item);
    });
    const baseOnly = base.filter((b) => !patch.some((item) => b && item && b[key] === item[key])).map(clone);
    const out = [];
    let i = 0;
    let j = 0;
    while (i < patched.length || j < baseOnly.length) {
      if (j >= baseOnly.length) { out.push(patched[i++]); continue; }
      if (i >= patched.length) { out.push(baseOnly[j++]); continue; }
      const ia = baseIndex(patched[i]);
      const ib = baseIndex(baseOnly[j]);
      if (ia < 0 || ia < ib) out.push(patched[i++]); else out.push(baseOnly[j++]);
    }
    return out;
  }
  if (patch && typeof patch === "object") {
    const out = base && typeof base === "object" && !Array.isArray(base) ? clone(base) : {};
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = smp(out[k], v, k);
    }
    return out;
  }
  return patch;
}
function jsonPatch(doc, ops) {
  const out = clone(doc);
  for (const op of ops) {
    const parts = op.path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = parts.pop();
    let cur = out;
    for (const p of parts) {
      if (cur === undefined || cur === null || !(p in cur)) throw new Error(`JSON patch path ${op.path} does not exist`);
      cur = cur[p];
    }
    if (op.op === "add") {
      if (Array.isArray(cur)) {
        if (last === "-") cur.push(op.value); else cur.splice(Number(last), 0, op.value);
      } else cur[last] = op.value;
    } else if (op.op === "replace" || op.op === "remove") {
      if (!(last in cur)) throw new Error(`JSON patch path ${op.path} does not exist`);
      if (op.op === "replace") cur[last] = op.value;
      else if (Array.isArray(cur)) cur.splice(Number(last), 1); else delete cur[last];
    } else {
      throw new Error(`JSON patch op ${op.op} not supported`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- schema validation
// Custom resources whose schemas come from their own package (CRDs are not in kubernetes-models).
const CRD_PACKAGES = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };
function modelClass(o) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
  const pkg = CRD_PACKAGES[group] || "kubernetes-models";
  const mod = group ? `${pkg}/${group}/${version}` : `${pkg}/${version}`;
  let m;
  try { m = require(mod); } catch (e) { return null; }
  return m[o.kind] || null;
}
// Runs the schema validator on a Proxy that records which properties it reads; a property it
// never read (in an object it did not enumerate as a map) is not in the schema.
function unknownFields(Cls, obj) {
  const rec = new WeakMap();
  const cache = new WeakMap();
  const wrap = (o) => {
    if (!o || typeof o !== "object") return o;
    if (cache.has(o)) return cache.get(o);
    const r = { keys: new Set(), enumerated: false };
    rec.set(o, r);
    const p = new Proxy(o, {
      get(t, k) { if (typeof k === "string") r.keys.add(k); return wrap(t[k]); },
      has(t, k) { if (typeof k === "string") r.keys.add(k); return k in t; },
      ownKeys(t) { r.enumerated = true; return Reflect.ownKeys(t); },
    });
    cache.set(o, p);
    return p;
  };
  try { Cls.prototype.validate.call(wrap(obj)); } catch (e) { /* reported by the plain validation */ }
  const out = [];
  const walk = (o, p) => {
    if (!o || typeof o !== "object") return;
    if (Array.isArray(o)) { o.forEach((v, i) => walk(v, `${p}/${i}`)); return; }
    const r = rec.get(o);
    for (const k of Object.keys(o)) {
      if (r && !r.enumerated && !r.keys.has(k)) out.push(`${p}/${k}`);
      walk(o[k], `${p}/${k}`);
    }
  };
  walk(obj, "");
  return out;
}
function schemaErrors(o) {
  const Cls = modelClass(o);
  if (!Cls) return [`no schema for ${o.apiVersion} ${o.kind}`];
  const errors = [];
  try { new Cls(clone(o)).validate(); } catch (e) { errors.push(e.message); }
  for (const f of unknownFields(Cls, clone(o))) errors.push(`unknown field ${f}`);
  return errors;
}

// ---------------------------------------------------------------- project conventions
const SERVER_FLAGS = new Set(["listen", "unix-socket-mode", "metrics-listen", "max-chunk-bytes", "max-stream-memory", "max-total-memory",
  "max-concurrent-streams", "device", "tls-cert", "tls-key", "tls-client-ca", "auth-token-file", "shutdown-grace"]);
function podSpecOf(o) {
  if (o.kind === "Pod") return o.spec;
  if (["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"].includes(o.kind)) return o.spec && o.spec.template && o.spec.template.spec;
  if (o.kind === "CronJob") return o.spec.jobTemplate.spec.template.spec;
  return null;
}
function podLabelsOf(o) {
  if (o.kind === "Pod") return o.metadata.labels || {};
  return (o.spec && o.spec.template && o.spec.template.metadata && o.spec.template.metadata.labels) || {};
}
function containersOf(o) {
  const s = podSpecOf(o);
  return s ? [...(s.initContainers || []), ...(s.containers || [])] : [];
}
const isAdapter = (c) => typeof c.image === "string" && /(^|\/)moe-adapter(-cuda)?(:|@|$)/.test(c.image);
function serverFlags(c) {
  // The adapter image's entrypoint is the server unless command overrides it.
  if (c.command && c.command.length) return null;
  const flags = [];
  const a = c.args || [];
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith("--")) continue;
    const eq = a[i].indexOf("=");
    const name = a[i].slice(2, eq < 0 ? undefined : eq);
    const value = eq < 0 ? a[++i] : a[i].slice(eq + 1);
    flags.push([name, value]);
  }
  return flags;
}
// Sizes as the server parses them (server_options.cc: digits + optional unit, case-insensitive).
function serverSize(text) {
  const m = /^(\d+)([a-zA-Z]*)$/.exec(String(text));
  if (!m) return null;
  const units = { "": 1, b: 1, k: 2 ** 10, kib: 2 ** 10, kb: 1e3, m: 2 ** 20, mib: 2 ** 20, mb: 1e6,
    g: 2 ** 30, gib: 2 ** 30, gb: 1e9, t: 2 ** 40, tib: 2 ** 40, tb: 1e12 };
  const f = units[m[2].toLowerCase()];
  return f === undefined ? null : Number(m[1]) * f;
}
// Kubernetes memory quantities (the forms used in practice).
function quantity(q) {
  if (q === undefined || q === null) return null;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return null;
  const units = { undefined: 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * units[m[2]];
}
function conventionErrors(o, all) {
  const errors = [];
  const spec = podSpecOf(o);
  if (o.kind === "Secret") {
    for (const [k, v] of Object.entries({ ...(o.stringData || {}), ...(o.data || {}) })) {
      const text = o.data && k in o.data ? Buffer.from(String(v), "base64").toString() : String(v);
      if (!text.includes("CHANGE-ME")) errors.push(`Secret key ${k}: committed Secrets must hold CHANGE-ME placeholders only`);
    }
  }
  if (!spec) return errors;
  const psc = spec.securityContext || {};
  if (psc.runAsNonRoot !== true) errors.push("pod securityContext.runAsNonRoot must be true");
  if (!psc.seccompProfile || psc.seccompProfile.type !== "RuntimeDefault") errors.push("pod seccompProfile must be RuntimeDefault");
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) errors.push("host namespaces are not allowed");
  const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
  const sameNs = (x) => (x.metadata.namespace || "") === (o.metadata.namespace || "");
  for (const v of volumes.values()) {
    if (v.secret && !all.some((x) => x.kind === "Secret" && x.metadata.name === v.secret.secretName && sameNs(x))) {
      errors.push(`volume ${v.name}: Secret ${v.secret.secretName} is not part of this build`);
    }
  }
  if (spec.serviceAccountName && !all.some((x) => x.kind === "ServiceAccount" && x.metadata.name === spec.serviceAccountName && sameNs(x))) {
    errors.push(`ServiceAccount ${spec.serviceAccountName} is not part of this build`);
  }
  if (spec.automountServiceAccountToken !== false) errors.push("automountServiceAccountToken must be false");
  for (const c of containersOf(o)) {
    const where = `container ${c.name}`;
    const sc = c.securityContext || {};
    if (sc.allowPrivilegeEscalation !== false) errors.push(`${where}: allowPrivilegeEscalation must be false`);
    if (sc.readOnlyRootFilesystem !== true) errors.push(`${where}: readOnlyRootFilesystem must be true`);
    if (sc.privileged) errors.push(`${where}: privileged`);
    if (!(sc.capabilities && (sc.capabilities.drop || []).includes("ALL"))) errors.push(`${where}: capabilities must drop ALL`);
    if ((sc.capabilities && sc.capabilities.add || []).length) errors.push(`${where}: adds capabilities`);
    if (sc.runAsNonRoot === false || sc.runAsUser === 0) errors.push(`${where}: runs as root`);
    const res = c.resources || {};
    for (const kind of ["requests", "limits"]) {
      for (const r of ["cpu", "memory"]) {
        if (!(res[kind] && res[kind][r] !== undefined)) errors.push(`${where}: resources.${kind}.${r} missing`);
      }
    }
    const mounts = c.volumeMounts || [];
    for (const m of mounts) if (!volumes.has(m.name)) errors.push(`${where}: volumeMount ${m.name} has no volume`);
    const tmp = mounts.find((m) => m.mountPath === "/tmp");
    if (!tmp || !volumes.get(tmp.name) || !volumes.get(tmp.name).emptyDir) errors.push(`${where}: /tmp must be an emptyDir mount`);
    if (/:latest$/.test(c.image || "") && isAdapter(c)) errors.push(`${where}: pin the image tag (not :latest)`);
    const probes = ["startupProbe", "readinessProbe", "livenessProbe"].filter((p) => c[p]);
    for (const p of probes) {
      const handlers = ["exec", "grpc", "httpGet", "tcpSocket"].filter((h) => c[p][h]);
      if (handlers.length !== 1) errors.push(`${where}: ${p} must have exactly one handler, has ${handlers.join(",") || "none"}`);
    }
    if (!isAdapter(c)) continue;
    const isSidecar = (spec.initContainers || []).includes(c);
    if (isSidecar && c.restartPolicy !== "Always") errors.push(`${where}: a sidecar init container needs restartPolicy: Always`);
    if (!c.livenessProbe) errors.push(`${where}: livenessProbe missing`);
    if (!c.readinessProbe && !isSidecar) errors.push(`${where}: readinessProbe missing`);
    if (!c.startupProbe && isSidecar) errors.push(`${where}: startupProbe missing (it gates the main containers)`);
    const flags = serverFlags(c);
    if (!flags) continue;
    const names = flags.map(([n]) => n);
    for (const n of names) if (!SERVER_FLAGS.has(n)) errors.push(`${where}: unknown server flag --${n}`);
    for (const n of new Set(names)) if (n !== "listen" && names.filter((x) => x === n).length > 1) errors.push(`${where}: flag --${n} given twice`);
    const get = (n) => (flags.find(([x]) => x === n) || [])[1];
    const tls = names.includes("tls-cert") || names.includes("tls-key");
    if (tls && !(names.includes("tls-cert") && names.includes("tls-key"))) errors.push(`${where}: --tls-cert and --tls-key go together`);
    // --listen may be repeated; what the pod IP reaches (probes, ports) is its non-loopback TCP addresses.
    const listens = flags.filter(([n]) => n === "listen").map(([, v]) => v);
    const listen = listens.length ? listens.join(", ") : "127.0.0.1:50051";
    const podIp = (listens.length ? listens : ["127.0.0.1:50051"]).filter((l) => !/^(unix:|127\.|localhost|\[::1\])/.test(l));
    const loopback = podIp.length === 0;
    for (const p of probes) {
      if ((c[p].grpc || c[p].tcpSocket) && tls) errors.push(`${where}: ${p} is a native ${c[p].grpc ? "gRPC" : "TCP"} probe but the server uses TLS (spec 15.8: exec probe)`);
      if ((c[p].grpc || c[p].tcpSocket) && loopback) errors.push(`${where}: ${p} dials the pod IP but the server listens on ${listen}`);
      if (c[p].grpc && !loopback && !podIp.some((l) => l.split(":").pop() === String(c[p].grpc.port))) errors.push(`${where}: ${p} port ${c[p].grpc.port} is not the --listen port`);
      if (c[p].exec) {
        const cmd = c[p].exec.command || [];
        if (cmd[0] !== "moe-adapter" || cmd[1] !== "health") errors.push(`${where}: ${p} exec probe must run moe-adapter health`);
        if (tls && !cmd.some((x) => x.startsWith("--tls-ca"))) errors.push(`${where}: ${p} health check needs --tls-ca with TLS on`);
        if (names.includes("tls-client-ca") && !cmd.some((x) => x.startsWith("--tls-cert"))) errors.push(`${where}: ${p} needs a client certificate (--tls-client-ca is set)`);
      }
    }
    for (const [n, v] of flags) {
      if (["tls-cert", "tls-key", "tls-client-ca", "auth-token-file"].includes(n) && v) {
        if (!mounts.some((m) => v.startsWith(m.mountPath.replace(/\/?$/, "/")))) errors.push(`${where}: --${n}=${v} is not on a mounted volume`);
      }
    }
    const ports = (c.ports || []).map((p) => p.containerPort);
    if (podIp.some((l) => !ports.includes(Number(l.split(":").pop())))) errors.push(`${where}: gRPC port not declared in ports`);
    // The budget is what streams may hold; the container also needs room for the process.
    const budget = serverSize(get("max-total-memory") || "16GiB");
    const limit = quantity(c.resources && c.resources.limits && c.resources.limits.memory);
    if (budget === null) errors.push(`${where}: --max-total-memory ${get("max-total-memory")} is not a size the server accepts`);
    else if (limit !== null && budget > 0.8 * limit) {
      errors.push(`${where}: --max-total-memory (${get("max-total-memory") || "default 16GiB"}) leaves less than 20% of the ${c.resources.limits.memory} memory limit`);
    }
    const dev = get("device");
    const gpu = c.resources && c.resources.limits && c.resources.limits["nvidia.com/gpu"];
    const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
    const device = dev ? dev.replace(/\$\((\w+)\)/g, (_, n) => env[n] !== undefined ? env[n] : `$(${n})`) : "cpu";
    if (/\$\(/.test(device)) errors.push(`${where}: --device uses an undefined variable: ${device}`);
    if (/^cuda/.test(device) && !gpu) errors.push(`${where}: --device ${device} without an nvidia.com/gpu limit`);
    if (gpu && !/^(cuda|auto)/.test(device)) errors.push(`${where}: nvidia.com/gpu requested but --device ${device}`);
    if (gpu && !/-cuda(:|@|$)/.test(c.image)) errors.push(`${where}: nvidia.com/gpu requested but the image is not the CUDA one`);
  }
  if (o.kind === "Deployment") {
    const sel = o.spec.selector && o.spec.selector.matchLabels || {};
    const labels = podLabelsOf(o);
    for (const [k, v] of Object.entries(sel)) if (labels[k] !== v) errors.push(`selector ${k}=${v} does not match the pod labels`);
  }
  return errors;
}
function matches(sel, labels) {
  return Object.keys(sel || {}).length > 0 && Object.entries(sel).every(([k, v]) => labels[k] === v);
}
function crossErrors(o, all) {
  const errors = [];
  const pods = all.filter((x) => podSpecOf(x) && (x.metadata.namespace || "") === (o.metadata.namespace || ""));
  if (o.kind === "Service") {
    const hits = pods.filter((p) => matches(o.spec.selector, podLabelsOf(p)));
    if (hits.length === 0) errors.push("selector matches no workload in this build");
    for (const port of o.spec.ports || []) {
      if (typeof port.targetPort === "string") {
        for (const h of hits) {
          if (!containersOf(h).some((c) => (c.ports || []).some((p) => p.name === port.targetPort))) {
            errors.push(`targetPort ${port.targetPort} is not a named port of ${idOf(h)}`);
          }
        }
      }
    }
  }
  if (o.kind === "NetworkPolicy") {
    // Only named clients, only declared ports: every rule names its ports and its peers by
    // labels (no ipBlock, no empty selector that would admit every pod).
    const hits = pods.filter((p) => matches(o.spec.podSelector && o.spec.podSelector.matchLabels, podLabelsOf(p)));
    if (hits.length === 0) errors.push("podSelector matches no workload in this build");
    if (!(o.spec.policyTypes || []).includes("Ingress")) errors.push("policyTypes must include Ingress");
    const declared = hits.flatMap((h) => containersOf(h).flatMap((c) => (c.ports || []).map((p) => [p.name, p.containerPort])));
    (o.spec.ingress || []).forEach((rule, i) => {
      const where = `ingress[${i}]`;
      if (!rule.ports || rule.ports.length === 0) errors.push(`${where}: admits every port (list the ports)`);
      for (const p of rule.ports || []) {
        if (!declared.some(([name, num]) => p.port === name || p.port === num)) errors.push(`${where}: port ${p.port} is not a declared port of the selected pods`);
      }
      if (!rule.from || rule.from.length === 0) errors.push(`${where}: admits every source (name the clients)`);
      for (const peer of rule.from || []) {
        if (peer.ipBlock) errors.push(`${where}: ipBlock peer (admit labelled pods instead)`);
        if (!(peer.podSelector && Object.keys(peer.podSelector.matchLabels || {}).length)) errors.push(`${where}: a peer without pod labels admits every pod${peer.namespaceSelector ? " of the selected namespaces" : ""}`);
      }
    });
  }
  if (o.kind === "ServiceMonitor") {
    const svcs = all.filter((x) => x.kind === "Service" && (x.metadata.namespace || "") === (o.metadata.namespace || "") &&
      matches(o.spec.selector && o.spec.selector.matchLabels, x.metadata.labels || {}));
    if (svcs.length !== 1) errors.push(`selector matches ${svcs.length} Services in this build (want exactly one, or every pod is scraped twice)`);
    for (const ep of o.spec.endpoints || []) {
      for (const svc of svcs) {
        if (!(svc.spec.ports || []).some((p) => p.name === ep.port)) errors.push(`endpoint port ${ep.port} is not a named port of Service ${svc.metadata.name}`);
      }
    }
  }
  if (o.kind === "PodDisruptionBudget") {
    const hits = pods.filter((p) => matches(o.spec.selector && o.spec.selector.matchLabels, podLabelsOf(p)));
    if (hits.length === 0) errors.push("selector matches no workload in this build");
    for (const h of hits) {
      if (h.kind === "Deployment" && typeof o.spec.minAvailable === "number" && (h.spec.replicas || 1) <= o.spec.minAvailable) {
        errors.push(`minAvailable ${o.spec.minAvailable} >= replicas of ${idOf(h)}: drains would block`);
      }
    }
  }
  return errors;
}

// ---------------------------------------------------------------- kubectl comparison
function kubectlBuild(dir) {
  const out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return YAML.parseAllDocuments(out).map((d) => d.toJS()).filter(Boolean);
}
const keyOf = (o) => `${o.apiVersion} ${o.kind} ${o.metadata.namespace || ""}/${o.metadata.name}`;

// ---------------------------------------------------------------- main
function findKustomizations(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() && e.name !== "validate" && e.name !== "node_modules") findKustomizations(path.join(dir, e.name), out);
  }
  if (fs.existsSync(path.join(dir, "kustomization.yaml"))) out.push(dir);
  return out;
}
function findYaml(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== "validate" && e.name !== "node_modules") findYaml(p, out); } else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out;
}

let kubectlOk = false;
if (useKubectl) {
  try { execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" }); kubectlOk = true; } catch (e) { kubectlOk = false; }
}
const dirs = findKustomizations(ROOT).sort();
console.log(`k8s: ${dirs.length} kustomizations under ${rel(ROOT)}`);
for (const dir of dirs) {
  const name = rel(dir);
  const [p0, f0] = [passed, failed];
  const { resources, errors } = build(dir);
  report(`${name}: kustomize build (${resources.length} objects)`, errors);
  const all = resources.map((r) => r.obj);
  for (const r of resources) {
    const o = r.obj;
    report(`${name}: ${idOf(o)} schema (${o.apiVersion})`, schemaErrors(o));
    const conv = [...conventionErrors(o, all), ...crossErrors(o, all)];
    report(`${name}: ${idOf(o)} conventions`, conv);
  }
  if (useKubectl && kubectlOk) {
    const errs = [];
    try {
      const theirs = new Map(kubectlBuild(dir).map((o) => [keyOf(o), o]));
      const ours = new Map(all.map((o) => [keyOf(o), o]));
      for (const k of new Set([...theirs.keys(), ...ours.keys()])) {
        if (!theirs.has(k)) errs.push(`only in this validator's build: ${k}`);
        else if (!ours.has(k)) errs.push(`only in kubectl kustomize: ${k}`);
        else if (canon(theirs.get(k)) !== canon(ours.get(k))) errs.push(`differs from kubectl kustomize: ${k}: ${firstDiff(theirs.get(k), ours.get(k), "", "kubectl", "here")}`);
      }
    } catch (e) {
      errs.push(`kubectl kustomize failed: ${(e.stderr || e.message).toString().trim().split("\n").pop()}`);
    }
    report(`${name}: same objects as kubectl kustomize`, errs);
  }
  const kinds = all.map(idOf).join(", ");
  console.log(`  ${failed > f0 ? "FAIL" : "ok  "}  ${name}: ${passed - p0} passed, ${failed - f0} failed [${kinds}]`);
}
if (useKubectl && !kubectlOk) console.log("  skip  kubectl kustomize comparison (no kubectl on this machine)");
const orphans = findYaml(ROOT).filter((f) => !usedFiles.has(f)).map(rel);
report("every YAML file under deploy/k8s is used by a kustomization", orphans.map((f) => `${f} is not listed anywhere`));
console.log(`k8s: ${passed} checks passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
