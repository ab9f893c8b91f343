"""Cross-file checks of deployment/kubernetes that no schema can express: that the pieces
of the grader-host deployment name each other right. Run by scripts/check-deployment.sh
(with its venv's Python, from the repository root); reads files, writes nothing.

- the TOML settings in the ConfigMaps use only keys that src/settings.rs knows (the
  structs are read from the source, so a renamed setting is caught here, offline);
- the grader's service_url reaches the service's hosts.bind port through the Service, the
  container port and both NetworkPolicies; plain HTTP is allowed on both sides if used;
- the grader's settings file, token file and Docker socket are where the pod mounts them;
  the engine is a native sidecar (it outlives the drain) and the only privileged container;
- every docker:dind container starts `dockerd` itself (no listener added by the image);
- terminationGracePeriodSeconds covers the longest assignment time limit;
- the ScaledObject scales that Deployment, with threshold = slots per pod;
- the kustomization lists every core manifest and leaves out the KEDA one;
- the ScaledObject schema refuses broken documents (so a pass means something).
"""

import copy
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml

K8S = Path("deployment/kubernetes")
problems: list[str] = []


def check(ok: bool, problem: str) -> None:
    if not ok:
        problems.append(problem)


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        sys.exit(f"expected one {kind} {name or ''} in the manifests, found {len(found)}")
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# --- settings keys against src/settings.rs -------------------------------------------
source = Path("src/settings.rs").read_text(encoding="utf-8")
structs = {
    m[1]: dict(re.findall(r"^\s*pub (\w+): ([\w:<>]+),", m[2], re.M))
    for m in re.finditer(r"^pub struct (\w+) \{(.*?)^\}", source, re.M | re.S)
}
if not {"Settings", "GraderSettings", "DockerSettings", "HostsSettings"} <= structs.keys():
    sys.exit("src/settings.rs: the settings structs were not found; update this check")


def known_keys(table: dict, struct: str, where: str) -> None:
    fields = structs[struct]
    for key, value in table.items():
        if key not in fields:
            problems.append(f"{where}: unknown setting {key!r} ({struct} has {', '.join(fields)})")
        elif isinstance(value, dict) and fields[key] in structs:
            known_keys(value, fields[key], f"{where}.{key}")


service_docs = load(K8S / "otter-service.yaml")
grader_docs = load(K8S / "grader-hosts.yaml")
service_cm = one(service_docs, "ConfigMap", "otter-service-config")
otter = tomllib.loads(service_cm["data"]["otter.toml"])
known_keys(otter, "Settings", "otter.toml")
grader_cm = next(d for d in grader_docs if d["kind"] == "ConfigMap" and "grader.toml" in d.get("data", {}))
grader = tomllib.loads(grader_cm["data"]["grader.toml"])
known_keys(grader, "GraderSettings", "grader.toml")

# --- the path from the grader to the host API ----------------------------------------
service_dep = one(service_docs, "Deployment", "otter-service")
service_labels = service_dep["spec"]["template"]["metadata"]["labels"]
service_ctr = next(c for c in service_dep["spec"]["template"]["spec"]["containers"] if "serve" in c.get("args", []))
grader_dep = one(grader_docs, "Deployment")
pod = grader_dep["spec"]["template"]["spec"]
grader_labels = grader_dep["spec"]["template"]["metadata"]["labels"]

hosts_bind = otter.get("hosts", {}).get("bind")
check(hosts_bind is not None, "otter.toml: no [hosts] bind, so no grader host can connect")
hosts_port = int(str(hosts_bind).rsplit(":", 1)[-1]) if hosts_bind else None
url = urlsplit(grader.get("service_url", ""))
check(url.scheme in ("http", "https"), f"grader.toml: service_url {url.geturl()!r} is not http(s)")
if url.scheme == "http" and url.hostname not in ("localhost", "127.0.0.1", "::1"):
    check(grader.get("allow_plain_http") is True, "grader.toml: http:// service_url needs allow_plain_http = true")
    check(otter.get("hosts", {}).get("allow_plain_http") is True,
          "otter.toml: grader hosts use plain HTTP, so [hosts] needs allow_plain_http = true")
svc_name = (url.hostname or "").split(".")[0]
svcs = [d for d in service_docs + grader_docs if d["kind"] == "Service" and d["metadata"]["name"] == svc_name]
check(len(svcs) == 1, f"grader.toml: service_url names Service {svc_name!r}, which the manifests lack")
for svc in svcs:
    check(selects({"matchLabels": svc["spec"]["selector"]}, service_labels), f"Service {svc_name} does not select the service pod")
    port = next((p for p in svc["spec"]["ports"] if p["port"] == (url.port or 443)), None)
    check(port is not None, f"Service {svc_name} has no port {url.port}")
    if port:
        target = port.get("targetPort", port["port"])
        ctr_port = next((p["containerPort"] for p in service_ctr.get("ports", [])
                         if target in (p.get("name"), p["containerPort"])), None)
        check(ctr_port == hosts_port, f"Service {svc_name} port {port['port']} -> {target}, "
              f"which is not the service container's hosts.bind port {hosts_port}")

policies = [d for d in grader_docs + service_docs if d["kind"] == "NetworkPolicy"]
grader_egress = [r for p in policies if selects(p["spec"]["podSelector"], grader_labels)
                 and "Egress" in p["spec"].get("policyTypes", []) for r in p["spec"].get("egress", [])]
check(any(any(p.get("port") == hosts_port for p in r.get("ports", []))
          and any("podSelector" in t and selects(t["podSelector"], service_labels) for t in r.get("to", []))
          for r in grader_egress), f"no NetworkPolicy lets grader pods reach the service pod's port {hosts_port}")
check(any(any(p.get("port") == 53 for p in r.get("ports", [])) for r in grader_egress),
      "no NetworkPolicy lets grader pods reach DNS")
service_ingress = [r for p in policies if selects(p["spec"]["podSelector"], service_labels)
                   and "Ingress" in p["spec"].get("policyTypes", []) for r in p["spec"].get("ingress", [])]
if service_ingress:
    check(any(any(p.get("port") == hosts_port for p in r.get("ports", []))
              and any(selects(f.get("podSelector", {"matchLabels": {"-": "-"}}), grader_labels) for f in r.get("from", []))
              for r in service_ingress), f"the service pod's ingress policy does not admit grader pods on {hosts_port}")
    http_port = next(p["containerPort"] for p in service_ctr["ports"] if p.get("name") == "http")
    check(any("from" not in r and any(p.get("port") == http_port for p in r.get("ports", []))
              for r in service_ingress), f"the service pod's ingress policy closes its students' port {http_port}")

# --- the grader pod's files, engine and grace period ---------------------------------
containers = pod["containers"]
init = pod.get("initContainers", [])
grader_ctr = next(c for c in containers if "grader" in c.get("args", []))
volumes = {v["name"]: v for v in pod["volumes"]}


def files_of(ctr: dict) -> set[str]:
    """Paths of the ConfigMap and Secret files a container sees (items, or every key)."""
    out = set()
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in grader_docs}

    def keys(kind: str, name: str, items: list | None) -> list[str]:
        if items:
            return [i["path"] for i in items]
        d = by_name.get((kind, name), {})
        return list(d.get("data", {})) + list(d.get("stringData", {}))

    for m in ctr.get("volumeMounts", []):
        v = volumes[m["name"]]
        sources = v.get("projected", {}).get("sources", []) or [v]
        for s in sources:
            if "configMap" in s:
                names = keys("ConfigMap", s["configMap"]["name"], s["configMap"].get("items"))
            elif "secret" in s:
                sec = s["secret"]
                names = keys("Secret", sec.get("name", sec.get("secretName")), sec.get("items"))
            else:
                continue
            out |= {f"{m['mountPath']}/{n}" for n in names}
    return out


args = grader_ctr["args"]
settings_path = args[args.index("--settings") + 1]
seen = files_of(grader_ctr)
check(settings_path in seen, f"grader container: --settings {settings_path} is not mounted (has {sorted(seen)})")
check(grader.get("token_file") in seen, f"grader.toml: token_file {grader.get('token_file')} is not mounted")

socket = grader.get("docker", {}).get("host", "")
check(socket.startswith("unix://"), "grader.toml: docker.host should be the sidecar's unix socket")
socket_dir = socket.removeprefix("unix://").rsplit("/", 1)[0]


def mounts(ctr: dict, path: str) -> str | None:
    return next((m["name"] for m in ctr.get("volumeMounts", []) if m["mountPath"] == path), None)


engines = [c for c in init if any(a.startswith("--host=") for a in c.get("args", []))]
check(len(engines) == 1, "grader pod: expected one Docker engine sidecar among the initContainers")
for dind in engines:
    check(dind.get("restartPolicy") == "Always",
          "dind: restartPolicy Always (a native sidecar) is what keeps the engine up while the grader drains")
    check(f"--host={socket}" in dind["args"], f"dind: does not listen on {socket}")
    shared = mounts(dind, socket_dir)
    check(shared is not None and shared == mounts(grader_ctr, socket_dir) and "emptyDir" in volumes[shared],
          f"the socket directory {socket_dir} is not one emptyDir shared by dind and the grader")
    group = next((a.split("=", 1)[1] for a in dind["args"] if a.startswith("--group=")), None)
    sc = grader_ctr.get("securityContext", {})
    check(group is not None and str(sc.get("runAsGroup")) == group,
          f"dind --group={group} is not the grader's runAsGroup {sc.get('runAsGroup')}: no socket access")
for c in containers + init:
    sc = c.get("securityContext", {})
    if c in engines:
        continue
    check(not sc.get("privileged"), f"{c['name']}: only the engine sidecar may be privileged")
    check(sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"]
          and sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True,
          f"{c['name']}: needs runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL")
for d in service_docs + grader_docs:
    if d["kind"] == "Deployment":
        t = d["spec"]["template"]["spec"]
        for c in t["containers"] + t.get("initContainers", []):
            if c["image"].startswith("docker:") and "dind" in c["image"] and c.get("args"):
                check(c["args"][0] == "dockerd", f"{d['metadata']['name']}/{c['name']}: the first argument must "
                      "be dockerd, or the image's entrypoint adds an unauthenticated --host=tcp://0.0.0.0:2375")
check(pod.get("automountServiceAccountToken") is False, "grader pod: automountServiceAccountToken should be false")

course = json.loads(service_cm["data"]["course-config.json"])


def limits(node) -> list[int]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "time_limit_secs"] + [x for v in node.values() for x in limits(v)]
    return []


longest = max([300] + limits(course))  # 300 s: the default time limit (src/grading/mod.rs)
check(pod.get("terminationGracePeriodSeconds", 30) >= longest + 30,
      f"terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} does not cover the longest "
      f"time limit {longest} s plus a 30 s margin: a drained pod would be killed mid-grade")
check("replicas" not in grader_dep["spec"], "grader Deployment: no replicas (the autoscaler owns the count)")
pdb = one(grader_docs, "PodDisruptionBudget")
check(selects(pdb["spec"]["selector"], grader_labels), "the PodDisruptionBudget does not select the grader pods")

# --- the ScaledObject ----------------------------------------------------------------
kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
scaled = one(load(K8S / "grader-autoscaling.yaml"), "ScaledObject")
spec = scaled["spec"]
ref = spec["scaleTargetRef"]
check(ref.get("kind", "Deployment") == "Deployment" and ref["name"] == grader_dep["metadata"]["name"],
      f"ScaledObject scales {ref['name']}, not the grader Deployment {grader_dep['metadata']['name']}")
check(scaled["metadata"].get("namespace") == kustomization.get("namespace"),
      "ScaledObject: its namespace is not the kustomization's")
check(spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), "ScaledObject: minReplicaCount > maxReplicaCount")
for t in spec["triggers"]:
    if t["type"] == "prometheus":
        check(float(t["metadata"]["threshold"]) == grader.get("slots"),
              f"ScaledObject: threshold {t['metadata']['threshold']} is not slots per pod ({grader.get('slots')})")
        check("otter_" in t["metadata"]["query"], "ScaledObject: the query does not read the service's metrics")

# --- the kustomization ---------------------------------------------------------------
listed = kustomization.get("resources", [])
core = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in ("kustomization.yaml", "grader-autoscaling.yaml"))
check(sorted(listed) == core, f"kustomization.yaml lists {listed}; the core manifests are {core}")
check("grader-autoscaling.yaml" not in listed, "kustomization.yaml: the KEDA file needs the KEDA CRDs; keep it apart")

# --- the schema refuses what it should -----------------------------------------------
schema = json.loads((K8S / "schemas/keda-scaledobject.schema.json").read_text(encoding="utf-8"))
validator = jsonschema.Draft202012Validator(schema)
check(validator.is_valid(scaled), "the ScaledObject does not pass its schema")


def broken(change) -> dict:
    doc = copy.deepcopy(scaled)
    change(doc)
    return doc


for what, doc in {
    "no scaleTargetRef.name": broken(lambda d: d["spec"]["scaleTargetRef"].pop("name")),
    "a number as threshold": broken(lambda d: d["spec"]["triggers"][0]["metadata"].update(threshold=4)),
    "a misspelt spec field": broken(lambda d: d["spec"].update(maxReplicas=3)),
    "a prometheus trigger without query": broken(lambda d: d["spec"]["triggers"][0]["metadata"].pop("query")),
    "another kind": broken(lambda d: d.update(kind="ScaledJob")),
    "no triggers": broken(lambda d: d["spec"].update(triggers=[])),
}.items():
    check(not validator.is_valid(doc), f"the ScaledObject schema accepts {what}")

if problems:
    print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
    sys.exit(1)
print("ok grader hosts: settings keys, host API path and policies, mounts, engine sidecar, "
      "grace period, ScaledObject target and threshold, kustomization, schema self-test")
