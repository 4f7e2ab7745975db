"""What a platform engineer expects of every rendered copyforge manifest, checked object by object:
resources, a restricted securityContext, pinned images from a registry, probes on long-running
containers, secure flags, Job hygiene, the worker update strategy, the serving PDB and HPA,
NetworkPolicies and Pod Security labels. check(name, objects) returns the problems found."""
import render_k8s


def _image_problems(image):
    name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
    registry = image.split("/")[0]
    problems = []
    if "/" not in image or ("." not in registry and ":" not in registry):
        problems.append(f"image {image} names no registry")
    if not name or not tag or "/" in tag:
        problems.append(f"image {image} has no pinned tag")
    elif tag == "latest":
        problems.append(f"image {image} uses the moving tag latest")
    return problems


def _container_problems(kind, c):
    out = []
    res = c.get("resources", {})
    for key in ("cpu", "memory"):
        if key not in res.get("requests", {}):
            out.append(f"no requests.{key}")
    if "memory" not in res.get("limits", {}):
        out.append("no limits.memory")
    sc = c.get("securityContext", {})
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append("the root filesystem is not read-only")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        out.append("capabilities are not all dropped")
    out += _image_problems(c.get("image", ""))
    args = [str(a) for a in c.get("command", []) + c.get("args", [])]
    for flag in ("--insecure", "--overwrite"):
        if any(a.split("=")[0] == flag for a in args):
            out.append(f"runs with {flag}")
    return out


def check(name, objects):
    problems = []
    kinds = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    for obj in objects:
        where = f"{name}: {obj['kind']} {obj['metadata']['name']}"
        spec = render_k8s.pod_spec(obj)
        if spec is None:
            continue
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True:
            problems.append(f"{where}: the pod may run as root")
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            for p in _container_problems(obj["kind"], c):
                problems.append(f"{where} container {c['name']}: {p}")
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for c in spec["containers"]:
                for probe in ("startupProbe", "livenessProbe"):
                    if probe not in c:
                        problems.append(f"{where} container {c['name']}: no {probe}")
        if obj["kind"] == "Job":
            if "ttlSecondsAfterFinished" not in obj["spec"]:
                problems.append(f"{where}: finished, it blocks re-applying (no ttlSecondsAfterFinished)")
            for v in spec.get("volumes", []):
                cm = v.get("configMap", {}).get("name")
                if cm and any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm and
                              cm != cm.rsplit("-", 1)[0] and len(cm.rsplit("-", 1)[-1]) == 10
                              for o in objects):
                    problems.append(f"{where}: its pod template names hashed ConfigMap {cm}, so a "
                                    "config change cannot be re-applied")
    for sts in kinds.get("StatefulSet", []):
        if sts["metadata"]["name"] == "worker" and \
                sts["spec"].get("updateStrategy", {}).get("type") != "OnDelete":
            problems.append(f"{name}: workers roll one by one (restarting the job per pod); "
                            "use updateStrategy OnDelete")
    for pdb in kinds.get("PodDisruptionBudget", []):
        if pdb["spec"].get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
            problems.append(f"{name}: PDB {pdb['metadata']['name']} blocks drains while its pods "
                            "are unready")
    if not any(h["spec"]["scaleTargetRef"]["name"] == "serving"
               for h in kinds.get("HorizontalPodAutoscaler", [])):
        problems.append(f"{name}: no HorizontalPodAutoscaler for serving")
    policies = kinds.get("NetworkPolicy", [])
    if not any(p["spec"].get("podSelector") == {} and "ingress" not in p["spec"] for p in policies):
        problems.append(f"{name}: no default-deny ingress NetworkPolicy")
    for obj in kinds.get("Deployment", []) + kinds.get("StatefulSet", []):
        labels = obj["spec"]["template"]["metadata"].get("labels", {})
        if not any(p["spec"].get("ingress") and
                   p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
                   for p in policies if p["spec"].get("podSelector")):
            problems.append(f"{name}: no NetworkPolicy admits traffic to {obj['metadata']['name']}")
    for ns in kinds.get("Namespace", []):
        if ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append(f"{name}: namespace {ns['metadata']['name']} does not enforce the "
                            "restricted Pod Security profile")
    if "Secret" in kinds:
        problems.append(f"{name}: renders Secrets; credentials are created outside the repository")
    return problems
