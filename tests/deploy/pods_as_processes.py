#!/usr/bin/env python3
"""Runs the rendered Kubernetes base as local processes and plays the deployment's whole story.

Each pod's containers run with their exact command, args and environment from the rendered
objects: the image's entrypoint is the copyforge binary, its working directory /opt/copyforge is
this checkout, ConfigMap and Secret contents are written to files at their mount paths, volumes
are temporary folders (the PersistentVolumeClaim one folder every pod shares, emptyDirs one per
pod), mount paths inside arguments and config files point at those folders, fieldRef and
resourceFieldRef values are filled in as the kubelet would, and Service names resolve to the
loopback port of a ready endpoint. Probes are run as the kubelet runs them (exec in the pod).

The story: the coordinator starts and its probes pass; the prepare Job writes shards; the submit
Job submits; the worker StatefulSet's pods train; the serving Deployment's pods become ready
(SERVING) and answer Generate through the Service address; a worker pod is deleted (SIGTERM) and
recreated, and the job recovers and succeeds; serving then holds the final checkpoint.

The only change to the rendered objects: the training job in the copyforge-config ConfigMap is
made small (the tiny model, few steps) so the story fits in a test; everything else runs as
rendered. Secrets are made here (scripts/make_certs.sh and random tokens), as an operator would.

usage: pods_as_processes.py --bin BUILD/cli/copyforge --control BUILD/cli/copyforge-control
                            --cache CACHE_DIR [--root REPO] [--keep]
"""
import argparse
import base64
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import render_k8s  # noqa: E402

IMAGE_WORKDIR = "/opt/copyforge"
IMAGE_ENV = {"COPYFORGE_CACHE": "/opt/copyforge/cache", "COPYFORGE_TEST_TOOLS": "0"}
SMALL_JOB = """name: small-pretrain
min_workers: 1
max_workers: 2
max_restarts: 10
recovery_timeout_s: 60
rendezvous_wait_s: 3
train:
  model: /opt/copyforge/configs/model/tiny.yaml
  data: /shared/data/shards
  out: /shared/runs/small-pretrain
  objective: pretrain
  seq_len: 64
  batch_size: 4
  steps: 240
  optimizer:
    lr: 1.0e-3
    warmup_steps: 4
  eval:
    interval: 20
    batches: 2
  checkpoint:
    interval: 20
    keep: 2
  dist:
    backend: gloo
    timeout_s: 30
  threads: 1
  log_interval: 10
"""


class StoryError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_count(quantity):
    q = str(quantity)
    return max(1, math.ceil(int(q[:-1]) / 1000 if q.endswith("m") else float(q)))


class Cluster:
    def __init__(self, args, objects, tmp):
        self.args = args
        self.objects = objects
        self.tmp = tmp
        self.by_kind = {}
        for o in objects:
            self.by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
        self.pods = {}          # pod name -> {"procs": [...], "ports": {...}, "template": ..}
        self.secrets = {}       # secret name -> {key: bytes}
        self.log_dir = os.path.join(tmp, "logs")
        os.makedirs(self.log_dir)
        self.pvc = {}

    # ---- volumes and paths ----
    def claim_dir(self, claim):
        path = self.pvc.setdefault(claim, os.path.join(self.tmp, "pvc", claim))
        os.makedirs(path, exist_ok=True)
        return path

    def mounts(self, pod, spec, container):
        """[(mount path, local path)] for a container, longest mount path first, plus the
        image's own directories."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        out = []
        for m in container.get("volumeMounts", []):
            v = volumes.get(m["name"])
            if v is None:  # a volumeClaimTemplate of a StatefulSet
                local = os.path.join(self.tmp, "pvc", f"{m['name']}-{pod}")
            elif "persistentVolumeClaim" in v:
                local = self.claim_dir(v["persistentVolumeClaim"]["claimName"])
            elif "emptyDir" in v:
                local = os.path.join(self.tmp, "pods", pod, m["name"])
            elif "configMap" in v or "secret" in v:
                local = os.path.join(self.tmp, "pods", pod, container["name"], m["name"])
            else:
                raise StoryError(f"{pod}: volume type of {m['name']} not supported")
            os.makedirs(local, exist_ok=True)
            out.append((m["mountPath"], local, v))
        out.append((IMAGE_ENV["COPYFORGE_CACHE"], self.args.cache, None))
        out.append((IMAGE_WORKDIR, self.args.root, None))
        return sorted(out, key=lambda m: -len(m[0]))

    def shared_mounts(self):
        """(mount path, folder, None) of every PersistentVolumeClaim mount in any workload."""
        out = []
        for obj in self.objects:
            spec = render_k8s.pod_spec(obj)
            if spec is None:
                continue
            claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                      for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
            for c in render_k8s.containers(obj):
                for m in c.get("volumeMounts", []):
                    if m["name"] in claims:
                        out.append((m["mountPath"], self.claim_dir(claims[m["name"]]), None))
        return out

    @staticmethod
    def map_paths(text, mounts):
        """Replaces mount paths (the longest that matches) in one pass, so a local folder is
        never mapped again."""
        local = {m: path for m, path, _ in mounts}
        pattern = "|".join(re.escape(m) for m, _, _ in mounts)
        return re.sub(rf"(?<![\w/])({pattern})(?=/|$|[^\w/.-])", lambda x: local[x.group(1)],
                      text)

    def fill_volumes(self, mounts):
        for mount, local, v in mounts:
            if v is None:
                continue
            if "configMap" in v:
                # Config files name paths other pods read (a job spec read by the coordinator
                # and the workers): the shared volume's paths map as in every pod.
                data = self.by_kind["ConfigMap"][v["configMap"]["name"]]["data"]
                shared = self.shared_mounts()
                known = {m for m, _, _ in mounts}
                every = sorted(mounts + [m for m in shared if m[0] not in known],
                               key=lambda m: -len(m[0]))
                for key, value in data.items():
                    with open(os.path.join(local, key), "w") as f:
                        f.write(self.map_paths(value, every))
            elif "secret" in v:
                data = self.secrets[v["secret"]["secretName"]]
                items = v["secret"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    path = os.path.join(local, item["path"])
                    if os.path.exists(path):
                        os.remove(path)
                    with open(path, "wb") as f:
                        f.write(data[item["key"]])
                    os.chmod(path, 0o440)

    # ---- networking ----
    def service_address(self, name, port):
        """HOST:PORT of a ready endpoint of Service `name` at its port `port`."""
        svc = self.by_kind["Service"].get(name)
        if svc is None:
            return None
        target = None
        for p in svc["spec"].get("ports", []):
            if p["port"] == port:
                target = p.get("targetPort", port)
        for pod, state in self.pods.items():
            labels = state["labels"]
            if not svc["spec"]["selector"].items() <= labels.items():
                continue
            if not state.get("ready", True):
                continue
            for c in state["containers"]:
                for cp in c.get("ports", []):
                    if target in (cp.get("name"), cp["containerPort"]):
                        return f"127.0.0.1:{state['ports'][cp['containerPort']]}"
        return None

    def map_network(self, text, pod_ports):
        def service(m):
            address = self.service_address(m.group(1), int(m.group(2)))
            return address if address else m.group(0)
        text = re.sub(r"\b([a-z][a-z0-9-]*):(\d+)\b", service, text)
        text = re.sub(r"127\.0\.0\.1:(\d+)",
                      lambda m: f"127.0.0.1:{pod_ports.get(int(m.group(1)), m.group(1))}", text)
        text = text.replace("0.0.0.0", "127.0.0.1")
        for flag in ("--port", "--metrics-port"):
            text = re.sub(rf"^{flag}=(\d+)$",
                          lambda m: f"{flag}={pod_ports.get(int(m.group(1)), m.group(1))}", text)
        return text

    # ---- containers ----
    def environment(self, pod, container, mounts):
        env = dict(os.environ)
        env.update({k: self.map_paths(v, mounts) for k, v in IMAGE_ENV.items()})
        values = {}
        for e in container.get("env", []):
            if "value" in e:
                values[e["name"]] = e["value"]
                continue
            ref = e["valueFrom"]
            if "fieldRef" in ref:
                field = ref["fieldRef"]["fieldPath"]
                values[e["name"]] = {"metadata.name": pod, "status.podIP": "127.0.0.1"}[field]
            elif "resourceFieldRef" in ref:
                res = ref["resourceFieldRef"]["resource"]
                kind, _, name = res.partition(".")
                values[e["name"]] = str(cpu_count(container["resources"][kind][name]))
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                values[e["name"]] = self.by_kind["ConfigMap"][r["name"]]["data"][r["key"]]
            else:
                raise StoryError(f"{pod}: env {e['name']}: unsupported source")
        env.update(values)
        return env, values

    def argv(self, pod, container, mounts, env_values, ports):
        command = container.get("command") or ["/usr/local/bin/copyforge"]
        out = []
        for a in command[1:] + container.get("args", []):
            a = re.sub(r"\$\((\w+)\)", lambda m: env_values.get(m.group(1), m.group(0)), str(a))
            out.append(self.map_network(self.map_paths(a, mounts), ports))
        # The image's binaries map to this build's (not through the mounts: the build may itself
        # lie under a folder a pod mounts over, such as /tmp).
        return [self.binary(command[0])] + out

    def binary(self, path):
        return {"/usr/local/bin/copyforge": self.args.bin,
                "/usr/local/bin/copyforge-control": self.args.control}.get(path, path)

    def prepare_container(self, pod, spec, container, ports):
        mounts = self.mounts(pod, spec, container)
        self.fill_volumes(mounts)
        env, values = self.environment(pod, container, mounts)
        cwd = self.map_paths(container.get("workingDir", IMAGE_WORKDIR), mounts)
        return self.argv(pod, container, mounts, values, ports), env, cwd, mounts

    def start_pod(self, pod, template):
        spec = template["spec"]
        ports = {}
        for c in spec.get("containers", []):
            for p in c.get("ports", []):
                ports[p["containerPort"]] = free_port()
        state = {"labels": template["metadata"].get("labels", {}), "ports": ports,
                 "containers": spec["containers"], "spec": spec, "procs": [], "ready": False}
        self.pods[pod] = state
        for c in spec.get("initContainers", []):
            self.run_to_completion(pod, spec, c, ports)
        for c in spec["containers"]:
            argv, env, cwd, _ = self.prepare_container(pod, spec, c, ports)
            log = open(os.path.join(self.log_dir, f"{pod}.{c['name']}.log"), "ab")
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=log,
                                    start_new_session=True)
            state["procs"].append((c, proc))
        return state

    def run_to_completion(self, pod, spec, container, ports, timeout=300):
        argv, env, cwd, _ = self.prepare_container(pod, spec, container, ports)
        log_path = os.path.join(self.log_dir, f"{pod}.{container['name']}.log")
        with open(log_path, "ab") as log:
            rc = subprocess.run(argv, env=env, cwd=cwd, stdout=log, stderr=log,
                                timeout=timeout).returncode
        if rc != 0:
            raise StoryError(f"{pod}/{container['name']} exited {rc}:\n" + tail(log_path))

    def run_job(self, name):
        job = self.by_kind["Job"][name]
        pod = f"{name}-run"
        template = job["spec"]["template"]
        self.start_pod(pod, template)
        for c, proc in self.pods[pod]["procs"]:
            rc = proc.wait(timeout=300)
            if rc != 0:
                raise StoryError(f"Job {name} container {c['name']} exited {rc}:\n" +
                                 tail(os.path.join(self.log_dir, f"{pod}.{c['name']}.log")))
        del self.pods[pod]

    def probe(self, pod, kind):
        state = self.pods[pod]
        for c in state["containers"]:
            p = c.get(kind)
            if p is None:
                continue
            if not self.probe_once(pod, state, c, p):
                return False
        return True

    def probe_once(self, pod, state, c, p):
        """One probe as the kubelet runs it: exec in the pod, or gRPC (plaintext), HTTP GET or
        a TCP connect to the pod's port."""
        timeout = p.get("timeoutSeconds", 1)
        if "exec" in p:
            mounts = self.mounts(pod, state["spec"], c)
            _, values = self.environment(pod, c, mounts)
            argv = self.argv(pod, {"command": p["exec"]["command"]}, mounts, values,
                             state["ports"])
            return subprocess.run(argv, capture_output=True, timeout=timeout + 10).returncode == 0
        kind = next(k for k in ("grpc", "httpGet", "tcpSocket") if k in p)
        port = p[kind]["port"]
        if isinstance(port, str):
            port = next(cp["containerPort"] for cp in c.get("ports", []) if cp.get("name") == port)
        address = f"127.0.0.1:{state['ports'][port]}"
        if kind == "grpc":
            r = subprocess.run([self.args.control, "health", "--address", address,
                                "--timeout", str(timeout)], capture_output=True)
            return r.returncode == 0
        if kind == "httpGet":
            try:
                with urllib.request.urlopen(f"http://{address}{p['httpGet'].get('path', '/')}",
                                            timeout=timeout) as r:
                    return 200 <= r.status < 400
            except OSError:
                return False
        try:
            socket.create_connection(("127.0.0.1", state["ports"][port]), timeout=timeout).close()
            return True
        except OSError:
            return False

    def wait_probe(self, pod, kind, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for c, proc in self.pods[pod]["procs"]:
                if proc.poll() is not None:
                    raise StoryError(f"{pod}/{c['name']} exited {proc.returncode}:\n" +
                                     tail(os.path.join(self.log_dir, f"{pod}.{c['name']}.log")))
            if self.probe(pod, kind):
                if kind == "readinessProbe":
                    self.pods[pod]["ready"] = True
                return
            time.sleep(1)
        raise StoryError(f"{pod}: {kind} did not pass within {timeout} s:\n" + self.pod_logs(pod))

    def delete_pod(self, pod, grace):
        """As the kubelet deletes a pod: SIGTERM, then SIGKILL after the grace period."""
        for _, proc in self.pods[pod]["procs"]:
            proc.send_signal(signal.SIGTERM)
        for _, proc in self.pods[pod]["procs"]:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        del self.pods[pod]

    def pod_logs(self, pod):
        return "\n".join(tail(os.path.join(self.log_dir, f))
                         for f in sorted(os.listdir(self.log_dir)) if f.startswith(pod + "."))

    def stop_all(self):
        for pod in list(self.pods):
            self.delete_pod(pod, 20)


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return f"--- {os.path.basename(path)}\n" + "".join(f.readlines()[-lines:])
    except OSError:
        return f"--- {path}: no log"


def make_secrets(cluster, root):
    tls = os.path.join(cluster.tmp, "made-secrets")
    subprocess.run(["bash", os.path.join(root, "scripts", "make_certs.sh"), tls, "2",
                    "DNS:coordinator", "DNS:serving"], check=True, capture_output=True)
    read = lambda f: open(os.path.join(tls, f), "rb").read()  # noqa: E731
    cluster.secrets["copyforge-tls"] = {"ca.crt": read("ca.pem"), "tls.crt": read("server.pem"),
                                        "tls.key": read("server.key")}
    cluster.secrets["copyforge-tokens"] = {k: (secrets.token_hex(32) + "\n").encode()
                                           for k in ("job", "worker", "reader", "serve", "watermark")}


def job_status(cluster, client):
    r = subprocess.run([cluster.args.control, "status", "--json"] + client,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise StoryError("status: " + r.stderr)
    jobs = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return {j["name"]: j for j in jobs}


def story(cluster, args):
    objects = cluster.by_kind
    step = lambda text: print(f"[{time.time() - start:6.1f}s] {text}", flush=True)  # noqa: E731
    start = time.time()
    for name, cm in objects["ConfigMap"].items():  # copyforge-config (hashed or not)
        if name == "copyforge-config" or name.startswith("copyforge-config-"):
            cm["data"]["pretrain-job.yaml"] = SMALL_JOB
    make_secrets(cluster, args.root)

    step("coordinator-0 starts; its startup and readiness probes pass")
    coordinator = objects["StatefulSet"]["coordinator"]
    cluster.start_pod("coordinator-0", coordinator["spec"]["template"])
    cluster.wait_probe("coordinator-0", "startupProbe", 60)
    cluster.wait_probe("coordinator-0", "readinessProbe", 30)

    step("Job copyforge-prepare writes the shards")
    cluster.run_job("copyforge-prepare")
    shards = os.path.join(cluster.claim_dir("copyforge-shared"), "data", "shards")
    if not os.path.isfile(os.path.join(shards, "manifest.json")):
        raise StoryError("the prepare Job wrote no shards")
    step("Job copyforge-prepare again: the dataset is left alone (--if-missing)")
    before = os.path.getmtime(os.path.join(shards, "manifest.json"))
    cluster.run_job("copyforge-prepare")
    if os.path.getmtime(os.path.join(shards, "manifest.json")) != before:
        raise StoryError("a re-run prepare Job rewrote the shards")

    step("Job copyforge-submit submits the training job (twice: one job, idempotent)")
    cluster.run_job("copyforge-submit")
    cluster.run_job("copyforge-submit")
    tls = os.path.join(cluster.tmp, "client")
    os.makedirs(tls, exist_ok=True)
    for key, value in list(cluster.secrets["copyforge-tls"].items()) + \
            [("job", cluster.secrets["copyforge-tokens"]["job"]),
             ("serve", cluster.secrets["copyforge-tokens"]["serve"])]:
        with open(os.path.join(tls, key), "wb") as f:
            f.write(value)
    tls_flags = ["--tls-cert", f"{tls}/tls.crt", "--tls-key", f"{tls}/tls.key",
                 "--tls-ca", f"{tls}/ca.crt"]
    client = ["--coordinator", cluster.service_address("coordinator", 50051),
              "--token-file", f"{tls}/job"] + tls_flags
    jobs = job_status(cluster, client)
    if list(jobs) != ["small-pretrain"]:
        raise StoryError(f"expected one job small-pretrain, got {list(jobs)}")

    step("StatefulSet worker: worker-0 and worker-1 start and train")
    workers = objects["StatefulSet"]["worker"]
    for i in range(workers["spec"]["replicas"]):
        cluster.start_pod(f"worker-{i}", workers["spec"]["template"])
    for i in range(workers["spec"]["replicas"]):
        cluster.wait_probe(f"worker-{i}", "startupProbe", 60)

    step("Deployment serving: its pods (the HPA's minReplicas) become SERVING")
    serving = objects["Deployment"]["serving"]
    replicas = serving["spec"].get(
        "replicas", objects["HorizontalPodAutoscaler"]["serving"]["spec"]["minReplicas"])
    serving_pods = [f"serving-{chr(ord('a') + i)}" for i in range(replicas)]
    for pod in serving_pods:
        cluster.start_pod(pod, serving["spec"]["template"])
        cluster.wait_probe(pod, "startupProbe", 60)
    for pod in serving_pods:
        cluster.wait_probe(pod, "readinessProbe", 300)
        cluster.wait_probe(pod, "livenessProbe", 30)

    step("Generate through the Service address")
    address = cluster.service_address("serving", 50052)
    gen = [args.bin, "generate", "--server", address, "--token-file", f"{tls}/serve",
           "--prompt", "Great lamp", "--max-new-tokens", "8", "--seed", "1"] + tls_flags
    r = subprocess.run(gen, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not r.stdout.startswith("Great lamp"):
        raise StoryError(f"Generate through {address} failed: {r.stderr}")
    r = subprocess.run(gen[:4] + gen[6:], capture_output=True, text=True, timeout=60)
    if r.returncode == 0 or "UNAUTHENTICATED" not in r.stderr:
        raise StoryError("Generate without the serving token was not refused")

    step("delete pod worker-1 (SIGTERM) mid-training; the StatefulSet recreates it")
    job = job_status(cluster, client)["small-pretrain"]
    if job["state"] != "RUNNING":
        raise StoryError(f"the job is {job['state']} before the worker is deleted: {job}")
    generation = int(job.get("generation", 0))
    grace = workers["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    cluster.delete_pod("worker-1", grace)
    cluster.start_pod("worker-1", workers["spec"]["template"])
    cluster.wait_probe("worker-1", "startupProbe", 60)

    step("the job recovers and succeeds")
    deadline = time.time() + 600
    while True:
        job = job_status(cluster, client)["small-pretrain"]
        if job["state"] == "SUCCEEDED":
            break
        if job["state"] in ("FAILED", "CANCELLED") or time.time() > deadline:
            raise StoryError(f"the job did not recover: {job}\n" + cluster.pod_logs("coordinator"))
        time.sleep(2)
    if int(job["generation"]) <= generation:
        raise StoryError(f"no new generation after the worker was deleted: {job}")
    final = job["latestCheckpoint"]
    step(f"job SUCCEEDED in generation {job['generation']}; serving swaps in {final}")
    deadline = time.time() + 120
    while True:
        r = subprocess.run(gen, capture_output=True, text=True, timeout=60)
        if final in r.stderr:
            break
        if time.time() > deadline:
            raise StoryError(f"serving never loaded {final}: {r.stderr}")
        time.sleep(1)
    step("every pod stops on SIGTERM")
    for pod in serving_pods + ["worker-0", "worker-1", "coordinator-0"]:
        procs = list(cluster.pods[pod]["procs"])
        cluster.delete_pod(pod, 60)
        for c, proc in procs:
            if proc.returncode != 0:
                raise StoryError(f"{pod}/{c['name']} exited {proc.returncode} on SIGTERM")
    print(f"pods_as_processes: the deployment's story passed in {time.time() - start:.0f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--cache", required=True, help="COPYFORGE_CACHE (the tokenizer files)")
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--k8s", help="the kustomization to render (default: deploy/k8s/base)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.root = os.path.abspath(args.root)
    args.bin, args.control = os.path.abspath(args.bin), os.path.abspath(args.control)
    objects = render_k8s.render(args.k8s or os.path.join(args.root, "deploy", "k8s", "base"))
    tmp = tempfile.mkdtemp(prefix="copyforge-pods-")
    cluster = Cluster(args, objects, tmp)
    try:
        story(cluster, args)
        return 0
    except (StoryError, subprocess.TimeoutExpired, KeyError) as e:
        print(f"pods_as_processes: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.stop_all()
        if args.keep:
            print(f"pods_as_processes: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
