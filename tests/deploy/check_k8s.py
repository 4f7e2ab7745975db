#!/usr/bin/env python3
"""Checks deploy/k8s against the copyforge binary it deploys.

Every kustomization's resources, patches and generator files exist; every container runs the
copyforge image with a subcommand and flags that `copyforge <command> --help` lists; probes,
Services and mounts refer to ports, volumes and ConfigMap keys that exist; and every training
job in a ConfigMap is accepted by a real coordinator (started on an ephemeral port).

Every overlay (and the base) is rendered (render_k8s.py), each rendered object is validated
against the Kubernetes OpenAPI schemas (validate_k8s.js, npm kubernetes-models; unknown fields
are errors) and held to the production basics (production_checks.py). Where a Kustomize of v4 or
later is installed (`kubectl kustomize`), its rendering must equal ours, ConfigMap hash suffixes
aside.

usage: check_k8s.py --bin BUILD/cli/copyforge --npm NODE_MODULES [--root REPO]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import production_checks  # noqa: E402
import render_k8s  # noqa: E402

errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def help_flags(binary, command, cache={}):
    if command not in cache:
        out = subprocess.run([binary, command, "--help"], capture_output=True, text=True)
        if out.returncode != 0:
            cache[command] = None
        else:
            cache[command] = set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", out.stdout))
    return cache[command]


def check_kustomization(directory, generated):
    path = os.path.join(directory, "kustomization.yaml")
    k = load_docs(path)[0]
    for r in k.get("resources", []):
        target = os.path.normpath(os.path.join(directory, r))
        if not os.path.exists(target):
            fail(path, f"resource {r} does not exist")
        elif os.path.isdir(target):
            check_kustomization(target, generated)
    for gen in k.get("configMapGenerator", []):
        keys = generated.setdefault(gen["name"], {})
        for f in gen.get("files", []):
            file_path = os.path.join(directory, f)
            if not os.path.isfile(file_path):
                fail(path, f"configMapGenerator {gen['name']}: file {f} does not exist")
            else:
                keys[os.path.basename(f)] = os.path.realpath(file_path)
        for literal in gen.get("literals", []):
            keys[literal.split("=", 1)[0]] = None
    for p in k.get("patches", []):
        if "path" in p and not os.path.isfile(os.path.join(directory, p["path"])):
            fail(path, f"patch {p['path']} does not exist")
        if "patch" in p:
            ops = yaml.safe_load(p["patch"])  # must parse
            if isinstance(ops, list):
                patch_ops.append((path, p.get("target", {}), ops))


# JSON patches of the overlays, checked against the base workloads once those are read.
patch_ops = []
# The images deploy/ builds: the CPU one (deploy/Dockerfile) and the GPU one (Dockerfile.gpu).
IMAGES = {"copyforge": "Dockerfile", "copyforge-gpu": "Dockerfile.gpu"}


def check_patches(binary, root, base_commands):
    """An overlay may only switch a container to an image deploy/ builds and add flags that the
    container's subcommand has."""
    for path, target, ops in patch_ops:
        command = base_commands.get(target.get("name"))
        for op in ops:
            where = f"{path}: patch of {target.get('kind')} {target.get('name')}"
            if op.get("path", "").endswith("/image"):
                image = op.get("value")
                if image not in IMAGES:
                    fail(where, f"image {image} is not one deploy/ builds")
                elif not os.path.isfile(os.path.join(root, "deploy", IMAGES[image])):
                    fail(where, f"image {image} needs deploy/{IMAGES[image]}")
            if "/args/" in op.get("path", "") and str(op.get("value", "")).startswith("--"):
                flag = op["value"].split("=", 1)[0]
                flags = help_flags(binary, command) if command else None
                if flags is None or flag not in flags:
                    fail(where, f"copyforge {command} has no flag {flag}")


def check_flags(where, binary, argv):
    """argv is a subcommand and its arguments; every --flag must be one the subcommand has."""
    flags = help_flags(binary, argv[0])
    if flags is None:
        fail(where, f"`copyforge {argv[0]} --help` fails")
        return False
    for a in argv[1:]:
        if a.startswith("--") and a.split("=", 1)[0] not in flags:
            fail(where, f"copyforge {argv[0]} has no flag {a.split('=', 1)[0]}")
    return True


# The Secrets the operator creates (docs/operations.md) and the keys each must hold.
SECRETS = {"copyforge-tls": {"ca.crt", "tls.crt", "tls.key"},
           "copyforge-tokens": {"job", "worker", "reader", "serve", "watermark"}}


def check_workload(path, doc, binary, generated):
    name = f"{path}: {doc['kind']} {doc['metadata']['name']}"
    spec = doc["spec"]
    pod = spec["template"]["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])}
    volumes |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    for v in pod.get("volumes", []):
        cm = v.get("configMap", {}).get("name")
        if cm and cm not in generated:
            fail(name, f"volume {v['name']} uses ConfigMap {cm}, which nothing generates")
        secret = v.get("secret", {})
        if secret and secret.get("secretName") not in SECRETS:
            fail(name, f"volume {v['name']} uses Secret {secret.get('secretName')}, not one of "
                       f"{sorted(SECRETS)}")
        for item in secret.get("items", []):
            if item["key"] not in SECRETS.get(secret.get("secretName"), set()):
                fail(name, f"volume {v['name']} reads key {item['key']} the Secret does not hold")
    for c in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name} container {c['name']}"
        if c.get("image") != "copyforge":
            fail(where, f"image {c.get('image')} is not the copyforge image")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                fail(where, f"mounts volume {m['name']}, which the pod does not have")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            for kind, body in (c.get(probe) or {}).items():
                if isinstance(body, dict) and "port" in body:
                    port = body["port"]
                    if port not in ports and port not in ports.values():
                        fail(where, f"{probe} uses port {port}, not a container port")
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref["key"] not in generated.get(ref["name"], {}):
                fail(where, f"env {env['name']} reads {ref['name']}/{ref['key']}, which is not generated")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = (c.get(probe) or {}).get("exec", {}).get("command", [])
            if command and command[0].endswith("copyforge-control"):
                check_flags(where + f" {probe}", binary, command[1:])
        command = c.get("command", [])
        if command and not command[0].endswith("copyforge-control"):
            continue  # a shell step
        args = c.get("args", [])
        if not args:
            fail(where, "no copyforge subcommand")
            continue
        if not check_flags(where, binary, args):
            continue
        for ref in re.findall(r"\$\((\w+)\)", " ".join(args)):
            if ref not in {e["name"] for e in c.get("env", [])}:
                fail(where, f"args use $({ref}), which is not in env")
    return {"labels": spec["template"]["metadata"].get("labels", {}),
            "ports": {p["name"] for c in pod["containers"] for p in c.get("ports", [])}}


def check_services(services, workloads):
    for path, svc in services:
        selector = svc["spec"].get("selector", {})
        matches = [w for w in workloads if selector.items() <= w["labels"].items()]
        where = f"{path}: Service {svc['metadata']['name']}"
        if not matches:
            fail(where, f"selector {selector} matches no pod template")
            continue
        for p in svc["spec"].get("ports", []):
            target = p.get("targetPort", p["port"])
            if isinstance(target, str) and not any(target in w["ports"] for w in matches):
                fail(where, f"targetPort {target} is no named port of the selected pods")


ROOT_FLAGS = ("--storage-root", "--data-root", "--runs-root")


def coordinator_roots(base):
    """The (flag, path) roots the coordinator's manifest starts it with."""
    for doc in load_docs(os.path.join(base, "coordinator.yaml")):
        if doc["kind"] != "StatefulSet":
            continue
        roots = []
        for arg in doc["spec"]["template"]["spec"]["containers"][0].get("args", []):
            flag, _, value = str(arg).partition("=")
            if flag in ROOT_FLAGS:
                roots.append((flag, value))
        return roots
    return []


def check_jobs_with_coordinator(binary, job_files, roots):
    """Each job, with its paths moved under a temporary prefix, is accepted by a coordinator
    started with the manifest's roots moved the same way: the jobs' paths lie under the roots."""
    if not roots:
        fail("coordinator.yaml", "the coordinator is started without --storage-root/--data-root")
        return
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "fs")
        flags = []
        for flag, path in roots:
            os.makedirs(prefix + path, exist_ok=True)
            flags += [flag, prefix + path]
        port_file = os.path.join(tmp, "port")
        log = open(os.path.join(tmp, "coordinator.log"), "w")
        coordinator = subprocess.Popen(
            [binary, "coordinator", "--state-dir", os.path.join(tmp, "state"), "--port", "0",
             "--host", "127.0.0.1", "--port-file", port_file] + flags, stdout=log, stderr=log)
        try:
            for _ in range(200):
                if os.path.exists(port_file) and open(port_file).read().strip():
                    break
                time.sleep(0.1)
            if not os.path.exists(port_file):
                fail("coordinator.yaml", "the coordinator did not start: " +
                     open(os.path.join(tmp, "coordinator.log")).read())
                return
            address = "127.0.0.1:" + open(port_file).read().strip()
            for path in job_files:
                spec = load_docs(path)[0]
                for key in ("model", "data", "out", "init_from"):
                    value = spec["train"].get(key)
                    if value is not None:
                        if not str(value).startswith("/"):
                            fail(path, f"train.{key} {value} is relative; job paths are absolute")
                        spec["train"][key] = prefix + str(value)
                moved = os.path.join(tmp, os.path.basename(path))
                with open(moved, "w") as f:
                    yaml.safe_dump(spec, f)
                out = subprocess.run([binary, "submit", "--coordinator", address, moved],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    fail(path, "the coordinator refuses the job: " + out.stderr.strip())
                    continue
                # Overlays submit the same run directory; only one job may hold it at a time.
                subprocess.run([binary, "cancel", "--coordinator", address, out.stdout.strip()],
                               capture_output=True, text=True)
        finally:
            coordinator.send_signal(signal.SIGTERM)
            coordinator.wait(timeout=30)


def validate_schemas(name, objects, node_modules):
    out = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "validate_k8s.js"),
                          node_modules], input=json.dumps(objects), capture_output=True, text=True)
    if out.returncode != 0:
        for line in out.stdout.splitlines() + out.stderr.splitlines():
            if not line.startswith("validate_k8s:"):
                fail(name, line)
    return out.returncode == 0


def kustomize_renders(directory):
    """`kubectl kustomize` output, or None when no Kustomize of v4+ is installed."""
    try:
        version = subprocess.run(["kubectl", "version", "--client"], capture_output=True,
                                 text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Kustomize Version: v(\d+)", version)
    if not match or int(match.group(1)) < 4:
        return None
    out = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True)
    if out.returncode != 0:
        fail(directory, "kubectl kustomize fails: " + out.stderr.strip())
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def unhashed(objects):
    text = json.dumps(objects, sort_keys=True)
    return json.loads(re.sub(r"(copyforge-[a-z]+)-[0-9a-z]{10}\b", r"\1", text))


def check_rendered(tops, node_modules):
    """Renders every kustomization and checks what it renders."""
    compared = 0
    for top in tops:
        name = os.path.relpath(top, os.path.join(top, "..", ".."))
        try:
            objects = render_k8s.render(top)
        except render_k8s.RenderError as e:
            fail(name, str(e))
            continue
        validate_schemas(name, objects, node_modules)
        for problem in production_checks.check(name, objects):
            errors.append(problem)
        real = kustomize_renders(top)
        if real is not None:
            compared += 1
            key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
            ours = sorted(unhashed(objects), key=key)
            theirs = sorted(unhashed(real), key=key)
            if ours != theirs:
                fail(name, "renders differently from kubectl kustomize")
    # The validator is not vacuous: a misspelt field and a wrong type are both reported.
    bad = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "x",
                                     "ports": [{"containerPort": "http"}]}]}}]
    before = len(errors)
    validate_schemas("self-check", bad, node_modules)
    if len(errors) - before != 2:
        fail("validate_k8s.js", "did not report the misspelt field and the wrong type")
    else:
        del errors[before:]
    return compared


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the copyforge binary")
    parser.add_argument("--npm", required=True, help="node_modules holding kubernetes-models")
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = parser.parse_args()
    k8s = os.path.join(args.root, "deploy", "k8s")
    overlays = [os.path.join(k8s, "overlays", o) for o in sorted(os.listdir(os.path.join(k8s, "overlays")))]
    base = os.path.join(k8s, "base")
    job_files = set()
    generated_by = {}
    for top in [base] + overlays:
        generated = generated_by[top] = {}
        check_kustomization(top, generated)
        for files in generated.values():
            job_files |= {f for f in files.values() if f and f.endswith("-job.yaml")}
    base_generated = generated_by[base]
    workloads, services = [], []
    for f in sorted(os.listdir(base)):
        if not f.endswith(".yaml") or f == "kustomization.yaml":
            continue
        for doc in load_docs(os.path.join(base, f)):
            if doc["kind"] in ("Deployment", "StatefulSet"):
                workloads.append(check_workload(f, doc, args.bin, base_generated))
            elif doc["kind"] == "Job":
                check_workload(f, doc, args.bin, base_generated)
            elif doc["kind"] == "Service":
                services.append((f, doc))
    check_services(services, workloads)
    base_commands = {}
    for f in sorted(os.listdir(base)):
        if f.endswith(".yaml") and f != "kustomization.yaml":
            for doc in load_docs(os.path.join(base, f)):
                if doc["kind"] in ("Deployment", "StatefulSet"):
                    argv = doc["spec"]["template"]["spec"]["containers"][0].get("args", [])
                    base_commands[doc["metadata"]["name"]] = argv[0] if argv else None
    check_patches(args.bin, args.root, base_commands)
    check_jobs_with_coordinator(args.bin, sorted(job_files), coordinator_roots(base))
    compared = check_rendered([base] + overlays, args.npm)
    if errors:
        print("check_k8s: " + str(len(errors)) + " problem(s)")
        for e in errors:
            print("  " + e)
        return 1
    print(f"check_k8s: {len(workloads)} workloads, {len(services)} services, "
          f"{len(job_files)} training jobs accepted by a coordinator, {1 + len(overlays)} "
          f"renderings schema-valid and production-ready ({compared} equal to kubectl "
          "kustomize's): ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
