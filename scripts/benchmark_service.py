"""`echotemporal serve` under load and under faults, against the in-process batch.

Starts a real server (``python -m echotemporal.cli serve``) on a free loopback port with W workers and
its own TMPDIR, then:

1. one client, a few sequential requests: the single-request latency (median of 3); then each of the
   sequences once, for the idle latency over the whole mix (median, p95) and each sequence's own
   idle latency. The sequences differ in size (seed 0: 11-39 frames of 0.23-0.85 Mpx), so their idle
   latencies spread over a factor of 4, and the load's p95 falls on the largest ones: besides p95 /
   single, the load phase reports each request's slowdown (its latency / its sequence's idle latency)
   and the load's p95 / the idle p95;
2. K concurrent clients (httpx) sending N requests in all, bounded by ``--time-limit``: each request
   uploads a CAMUS-size corrupted phantom with its Info cfg, long-polls the job's status
   (``?wait=30``) until it is done, downloads the corrected labels and deletes the job. Prints
   throughput (completed requests/s, wall clock from the first upload to the last download), p50/p95
   latency (upload to download), errors, the server process's RSS at the start, after the
   ``--rss-at``-th request and at the end, and the CPU seconds per request of the server process, its
   workers and the clients;
3. fault cases, each followed by ``/healthz`` and a count of the job folders left in the server's
   temporary folder: a client that disconnects mid-upload, a malformed multipart body, an oversized
   upload (with Content-Length, and chunked), a worker process killed mid-job (SIGKILL to the worker
   that is using CPU) followed by a normal job;
4. the server is stopped with Ctrl-C (SIGINT): its temporary folder must be gone.

With ``--batch`` it also runs ``scripts/benchmark_batch.py``'s measurement (``run_batch`` with the
same W workers in a fresh process, worker start-up included) on the same sequences for comparison,
once before the server starts and once after it stops (the mean rate is compared; CPU seconds per
sequence are printed beside the service's, a comparison the neighbours' load disturbs less).

The sequences are ``phantoms.write_phantom_tree`` patients (2CH and 4CH views, CAMUS size: about 25
frames of 460k pixels), generated once into ``--workdir`` and reused.

Usage:
    python scripts/benchmark_service.py                               # 40 requests, 4 clients, 2 workers
    python scripts/benchmark_service.py --requests 1000 --batch       # the issue's figures
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from echotemporal.serve.launch import ServerStartError, spawn_server

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _cpu_split(pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server process, its worker processes and this benchmark process."""
    tick = os.sysconf("SC_CLK_TCK")
    workers = sum(_cpu_ticks(c) for c in _children(pid))
    me = os.times()
    return {"server": _cpu_ticks(pid) / tick, "workers": workers / tick, "clients": me.user + me.system}


def _sequences(workdir: Path, n_patients: int, seed: int) -> tuple[Path, list[tuple[Path, Path]]]:
    """(tree root, [(sequence, Info cfg)]) of a phantom tree generated once."""
    from echotemporal.phantoms import write_phantom_tree

    root = workdir / f"tree-{n_patients}-seed{seed}"
    if not (root / ".complete").exists():
        write_phantom_tree(root, n_patients, corrupt=True, seed=seed, overwrite=True)
        (root / ".complete").write_text("ok\n")
    pairs = []
    for seq in sorted(root.glob("patient*/patient*_half_sequence_gt.nii.gz")):
        view = seq.name.split("_")[1]
        pairs.append((seq, seq.parent / f"Info_{view}.cfg"))
    return root, pairs


def _one_request(client: httpx.Client, url: str, seq: Path, cfg: Path) -> float:
    """Upload, long-poll the status until the job ends, download the labels, delete; seconds. Raises on
    any non-success."""
    start = time.perf_counter()
    r = client.post(f"{url}/v1/jobs", files={"sequence": (seq.name, seq.read_bytes()), "info": (cfg.name, cfg.read_bytes())})
    r.raise_for_status()
    status_url = r.json()["status_url"]
    while (status := client.get(status_url, params={"wait": 30}).json())["status"] in ("queued", "running"):
        pass  # the long-poll answers as soon as the job ends
    if status["status"] != "done":
        raise RuntimeError(f"job {status['status']}: {status.get('error')}")
    labels = client.get(status["results"]["labels.nii.gz"])
    labels.raise_for_status()
    seconds = time.perf_counter() - start
    client.delete(status_url).raise_for_status()
    return seconds


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (the value at rank ``int(q * n)`` of the sorted list)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _load(url: str, pairs: list, n: int, clients: int, time_limit: float, pid: int, rss_at: int,
          idle_s: list[float]) -> dict:
    """The load phase; ``idle_s[i]``: sequence i's latency on the idle server, for each request's slowdown."""
    latencies: list[float] = []
    slowdowns: list[float] = []
    errors: list[str] = []
    rss: dict[str, float] = {"start": _rss_mb(pid)}
    lock = threading.Lock()
    counter = iter(range(n))
    deadline = time.monotonic() + time_limit

    def client_loop() -> None:
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                seq, cfg = pairs[i % len(pairs)]
                try:
                    seconds = _one_request(client, url, seq, cfg)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                with lock:
                    latencies.append(seconds)
                    slowdowns.append(seconds / idle_s[i % len(pairs)])
                    if len(latencies) == rss_at:
                        rss[f"after {rss_at}"] = _rss_mb(pid)

    cpu_before = _cpu_split(pid)
    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    rss["end"] = _rss_mb(pid)
    cpu = {k: (v - cpu_before[k]) / max(1, len(latencies)) for k, v in _cpu_split(pid).items()}
    return {
        "requests": n, "completed": len(latencies), "errors": len(errors), "error_examples": errors[:3],
        "wall_s": wall, "throughput_per_s": len(latencies) / wall, "p50_s": _quantile(latencies, 0.5),
        "p95_s": _quantile(latencies, 0.95), "rss_mb": rss, "cpu_s_per_request": cpu,
        "slowdown_p50": _quantile(slowdowns, 0.5), "slowdown_p95": _quantile(slowdowns, 0.95),
    }


def _job_folders(tmp: Path) -> int:
    return len(list(tmp.glob("echotemporal-serve-*/req-*")))


def _raw_http(port: int, head: bytes, body_part: bytes, read: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        try:
            s.sendall(body_part)
        except OSError:
            pass
        if not read:
            return b""
        try:
            return s.recv(4096)
        except OSError as exc:
            return repr(exc).encode()


def _faults(url: str, port: int, tmp: Path, pairs: list, max_upload_mb: float, pid: int) -> list[tuple[str, str, bool]]:
    """(case, what happened, ok) for each fault case."""
    results = []
    seq, cfg = pairs[0]
    data = seq.read_bytes()
    boundary = "benchB"
    part_head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"sequence\"; filename=\"{seq.name}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode()

    def healthy() -> bool:
        return httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"

    def settle() -> int:
        end = time.monotonic() + 5
        while _job_folders(tmp) and time.monotonic() < end:
            time.sleep(0.1)
        return _job_folders(tmp)

    # 1. client disconnects mid-upload
    total = len(part_head) + len(data) + 64
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {total}\r\n\r\n").encode()
    _raw_http(port, head, part_head + data[: len(data) // 2], read=False)
    left = settle()
    results.append(("client disconnects mid-upload", f"healthz ok={healthy()}, job folders left {left}", healthy() and left == 0))

    # 2. malformed multipart
    r = httpx.post(f"{url}/v1/jobs", content=part_head + data[:1000] + b"\r\n--wrong--\r\n",
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    left = settle()
    ok = r.status_code == 400 and healthy() and left == 0
    results.append(("malformed multipart body", f"{r.status_code} {r.json()['error']!r}, job folders left {left}", ok))

    # 3a. oversized, announced by Content-Length: refused before the body is read
    big = int((max_upload_mb + 1) * 2**20)
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {big}\r\n\r\n").encode()
    reply = _raw_http(port, head, part_head, read=True)
    status_line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    left = settle()
    results.append(("oversized upload (Content-Length)", f"{status_line!r}, job folders left {left}", " 413 " in status_line and healthy() and left == 0))

    # 3b. oversized, chunked: counted while streaming, reading stops at the limit
    sent = [0]

    def chunks():
        yield part_head
        block = b"\0" * (1 << 20)
        for _ in range(int(max_upload_mb) + 8):
            sent[0] += len(block)
            yield block

    try:
        r = httpx.post(f"{url}/v1/jobs", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=60)
        outcome = f"{r.status_code} {r.json()['error']!r}"
        ok = r.status_code == 413
    except httpx.TransportError as exc:  # the server may close the connection while we still send
        outcome, ok = f"connection closed by the server ({type(exc).__name__})", True
    left = settle()
    results.append(("oversized upload (chunked)", f"{outcome}, client sent {sent[0] / 2**20:.0f} MB, job folders left {left}", ok and healthy() and left == 0))

    # 4. a worker killed mid-job
    r = httpx.post(f"{url}/v1/jobs", files={"sequence": (seq.name, data), "info": (cfg.name, cfg.read_bytes())})
    status_url = r.json()["status_url"]
    while httpx.get(status_url).json()["status"] != "running":
        time.sleep(0.02)
    workers = [c for c in _children(pid) if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]
    before = {c: _cpu_ticks(c) for c in workers}
    time.sleep(0.3)
    busy = max(workers, key=lambda c: _cpu_ticks(c) - before[c])
    os.kill(busy, signal.SIGKILL)
    while (status := httpx.get(status_url).json())["status"] not in ("done", "failed"):
        time.sleep(0.05)
    httpx.delete(status_url)
    after = httpx.post(f"{url}/v1/jobs", files={"sequence": (seq.name, data), "info": (cfg.name, cfg.read_bytes())}).json()["status_url"]
    while (again := httpx.get(after).json())["status"] not in ("done", "failed"):
        time.sleep(0.05)
    httpx.delete(after)
    left = settle()
    ok = status["status"] == "failed" and status["error"]["status"] == 500 and again["status"] == "done" and healthy() and left == 0
    results.append((
        "worker killed mid-job",
        f"job {status['status']} ({status.get('error', {}).get('error')}), next job {again['status']}, job folders left {left}", ok,
    ))
    return results


def _batch(root: Path, workdir: Path, workers: int, method: str) -> dict:
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_batch.py"), "_run", "--root", str(root), "--out",
           str(workdir / "batch-out"), "--workers", str(workers), "--method", method]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"batch run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--patients", type=int, default=10, help="distinct patients (2 sequences each) cycled through")
    parser.add_argument("--method", default="arvae", choices=["arvae", "gaussian", "none"])
    parser.add_argument("--max-upload-mb", type=float, default=16.0)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds for the load phase")
    parser.add_argument("--rss-at", type=int, default=100, help="request count of the middle RSS reading")
    parser.add_argument("--batch", action="store_true", help="also measure run_batch on the same tree")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "echotemporal-bench-service")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    root, pairs = _sequences(args.workdir, args.patients, args.seed)
    from echotemporal.io import read_sequence

    sizes = [read_sequence(s).labels.shape for s, _ in pairs]
    print(f"{len(pairs)} sequences: {statistics.mean(s[0] for s in sizes):.1f} frames x "
          f"{statistics.mean(s[1] * s[2] for s in sizes) / 1e3:.0f}k pixels on average")
    # On a shared machine the neighbours' load changes within minutes: the batch runs once before and
    # once after the service's load phase, and the service is compared with the mean of the two.
    batches = [_batch(root, args.workdir, args.workers, args.method)] if args.batch else []
    tmp = Path(tempfile.mkdtemp(prefix="server-tmp-", dir=args.workdir))
    log = open(args.workdir / "server.log", "wb")  # noqa: SIM115
    options = ["--workers", str(args.workers), "--method", args.method, "--max-queue", str(max(64, 2 * args.clients)),
               "--max-upload-mb", str(args.max_upload_mb)]
    try:
        server, url = spawn_server(options, env={**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}, log=log,
                                   cwd=ROOT, timeout_s=120, poll_s=0.2)
    except ServerStartError as exc:
        raise SystemExit(f"{exc}\n{(args.workdir / 'server.log').read_text()[-3000:]}") from exc
    port = int(url.rsplit(":", 1)[1])
    try:
        version = httpx.get(f"{url}/v1/version").json()
        print(f"server: {args.workers} workers, method {args.method}, backend {version['backend']}, "
              f"model sha256 {version['model_sha256'][:12]}")
        with httpx.Client(timeout=120) as client:
            _one_request(client, url, *pairs[0])  # warm-up (first-use imports in the worker)
            single = [_one_request(client, url, *pairs[i % len(pairs)]) for i in range(3)]
            idle = [_one_request(client, url, *pair) for pair in pairs]  # each sequence once, server idle
        single_s = statistics.median(single)
        print(f"single request (1 client, median of 3): {single_s:.2f} s")
        print(f"idle server, each of the {len(pairs)} sequences once (1 client): median {statistics.median(idle):.2f} s, "
              f"p95 {_quantile(idle, 0.95):.2f} s, min {min(idle):.2f} s, max {max(idle):.2f} s")
        load_average = os.getloadavg()[0]
        load = _load(url, pairs, args.requests, args.clients, args.time_limit, server.pid,
                     min(args.rss_at, max(1, args.requests // 4)), idle)
        print(f"{os.cpu_count()} CPUs; 1-min load average at the start / end of the load phase: "
              f"{load_average:.1f} / {os.getloadavg()[0]:.1f} (a shared machine: the neighbours' share, beside ours)")
        rss = ", ".join(f"{k} {v:.0f} MB" for k, v in load["rss_mb"].items())
        print(f"load: {load['completed']}/{load['requests']} requests from {args.clients} clients in {load['wall_s']:.1f} s: "
              f"{load['throughput_per_s']:.3f} requests/s, p50 {load['p50_s']:.2f} s, p95 {load['p95_s']:.2f} s "
              f"(p95 / single {load['p95_s'] / single_s:.2f}), errors {load['errors']}")
        print(f"each request's latency / its sequence's idle latency: p50 {load['slowdown_p50']:.2f}, "
              f"p95 {load['slowdown_p95']:.2f}; load p95 / idle p95 {load['p95_s'] / _quantile(idle, 0.95):.2f}")
        for example in load["error_examples"]:
            print(f"  error: {example}")
        print(f"server RSS: {rss}")
        print("CPU s per request: " + ", ".join(f"{k} {v:.3f}" for k, v in load["cpu_s_per_request"].items()))
        for case, what, ok in _faults(url, port, tmp, pairs, args.max_upload_mb, server.pid):
            print(f"fault: {case}: {what} -> {'OK' if ok else 'FAIL'}")
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)
    left = list(tmp.glob("echotemporal-serve-*"))
    print(f"server stopped (exit {code}); its temporary folders left: {len(left)}")
    if args.batch:
        batches.append(_batch(root, args.workdir, args.workers, args.method))
        rates = [b["n"] / b["wall_s"] for b in batches]
        rate = statistics.mean(rates)
        cpu_per_request = sum(load["cpu_s_per_request"].values())
        print(f"in-process batch: {batches[0]['n']} sequences, {args.workers} workers (worker start-up included), "
              f"before / after the service: {rates[0]:.3f} / {rates[1]:.3f} sequences/s, mean {rate:.3f}; "
              f"service / batch = {load['throughput_per_s'] / rate:.2f}")
        print(f"CPU s per sequence: batch {statistics.mean(b['cpu_s'] / b['n'] for b in batches):.3f} (start-up included), "
              f"service {cpu_per_request:.3f} (server, workers and clients)")


if __name__ == "__main__":
    main()
