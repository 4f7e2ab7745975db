#!/usr/bin/env python3
"""Recovery time of the control plane: from a worker's death to the job's next training step.

Starts a coordinator and two workers on loopback, submits a job (tiny model, checkpoint every 10
steps, min_workers 1), waits for a checkpoint, then fails one worker and measures:
  detected  - the failure until the job is RECOVERING (restarts counter moves)
  restarted - until the new generation is RUNNING
  stepping  - until the first training step of the new generation is logged
for a SIGKILL (the peer's collective fails at once) and a SIGSTOP (found by the heartbeat
timeout). usage: bench/recovery_bench.py [BUILD_DIR]
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
BIN = os.path.abspath(os.path.join(BUILD, "cli", "copyforge"))
WORK = os.path.abspath(os.path.join(BUILD, "recovery-bench"))
CACHE = os.environ.get("COPYFORGE_CACHE", os.path.expanduser("~/.cache/copyforge"))
HEARTBEAT_TIMEOUT = 3.0


def run(*args):
    return subprocess.run([BIN, *args], check=True, capture_output=True, text=True).stdout


def status(addr, job):
    out = subprocess.run([BIN, "status", "--coordinator", addr, job, "--json"],
                         capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else None


def metrics(run_dir):
    """The run's metrics.jsonl records (the trainer marks each start with an "event" line)."""
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def steps_after_restart(run_dir):
    """Training steps logged after the second start of the run."""
    starts, after = 0, 0
    for r in metrics(run_dir):
        if r.get("event") == "start":
            starts += 1
        elif "loss" in r and starts >= 2:
            after += 1
    return after


def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"recovery_bench: timed out waiting for {what}")


def trial(how):
    root = os.path.join(WORK, how)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    logs = open(os.path.join(root, "processes.log"), "w")
    port_file = os.path.join(root, "port")
    procs = [subprocess.Popen([BIN, "coordinator", "--state-dir", os.path.join(root, "state"),
                               "--port-file", port_file, "--heartbeat-timeout",
                               str(HEARTBEAT_TIMEOUT),
                               # Jobs may read the shards and model config, write under root.
                               "--data-root", WORK, "--data-root", os.path.abspath("configs"),
                               "--runs-root", root], stdout=logs, stderr=logs)]
    wait(lambda: os.path.exists(port_file), 30, "the coordinator")
    addr = "127.0.0.1:" + open(port_file).read().strip()
    for wid in ("w1", "w2"):
        procs.append(subprocess.Popen([BIN, "worker", "--coordinator", addr, "--workdir",
                                       os.path.join(root, wid), "--id", wid, "--threads", "1"],
                                      stdout=logs, stderr=logs))
    run_dir = os.path.join(root, "run")
    spec = os.path.join(root, "job.yaml")
    with open(spec, "w") as f:
        f.write(f"""name: recovery-{how}
min_workers: 1
max_workers: 2
train:
  model: {os.path.abspath('configs/model/tiny.yaml')}
  data: {os.path.join(WORK, 'shards')}
  out: {run_dir}
  seq_len: 64
  batch_size: 4
  steps: 100000
  eval:
    interval: 0
  checkpoint:
    interval: 10
    keep: 2
  dist:
    timeout_s: 10
  threads: 1
  log_interval: 1
""")
    try:
        job = run("submit", "--coordinator", addr, spec).strip()
        wait(lambda: (status(addr, job) or {}).get("latestCheckpoint"), 180, "a checkpoint")
        before = status(addr, job)
        victim = procs[2] if before["workers"][-1] == "w2" else procs[1]
        t0 = time.time()
        victim.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGSTOP)
        wait(lambda: (status(addr, job) or {}).get("restarts", 0) > 0, 120, "RECOVERING")
        t1 = time.time()
        wait(lambda: (s := status(addr, job)) and s["state"] == "RUNNING" and
             int(s["generation"]) > int(before["generation"]), 120, "the new generation")
        t2 = time.time()

        wait(lambda: steps_after_restart(run_dir) > 0, 120, "a step of the new generation")
        t3 = time.time()
        run("cancel", "--coordinator", addr, job)
        return t1 - t0, t2 - t0, t3 - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    run("sample-data", "--out", os.path.join(WORK, "data"), "--records", "600")
    subprocess.run([BIN, "prepare", "--input", os.path.join(WORK, "data", "amazon2023", "*"),
                    "--tokenizer", os.path.join(CACHE, "gpt2-tokenizer"), "--out",
                    os.path.join(WORK, "shards")], check=True, capture_output=True)
    print(f"recovery_bench: 2 workers, tiny model, heartbeat timeout {HEARTBEAT_TIMEOUT:.0f} s, "
          f"rendezvous wait 3 s (default), collective timeout 10 s")
    for how in ("sigkill", "sigstop"):
        detected, restarted, stepping = trial(how)
        print(f"  {how:8s} detected {detected:5.1f} s   new generation running {restarted:5.1f} s"
              f"   first training step {stepping:5.1f} s")


if __name__ == "__main__":
    main()
