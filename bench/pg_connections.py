"""Memory of `meshwork serve` across many Postgres connections: is per-connection state given back?

Usage: bench/pg_connections.py PATH/TO/meshwork [--connections N] [--rounds R]

Copies the policy fixture mesh (crates/query/tests/fixtures/mesh), applies it, issues a token,
serves it on free ports and reads the server's resident memory (VmRSS from /proc) after a
warm-up of 10 connections, then after each round of N sequential connections (each one a psql
process that authenticates, runs `\\dt` and one query over two products, and disconnects).
A server that gives connection state back stays flat from round to round; one that leaks grows
by the same amount every round.

Prints a markdown table. Not a test: no assertion on numbers. Needs psql (postgresql-client).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "crates/query/tests/fixtures/mesh"
QUERY = "SELECT count(*) FROM sales.orders o JOIN sales.customers c ON c.customer_id = o.customer_id"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def meshwork(binary, mesh, *args):
    result = subprocess.run([binary, "-C", str(mesh), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`meshwork {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def connect(port, token, n):
    for _ in range(n):
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-d", "meshwork", "-X", "-A", "-t", "-c", "\\dt sales.*", "-c", QUERY],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": token},
        )
        if result.returncode != 0:
            sys.exit(f"psql failed: {result.stderr}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--connections", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    work = Path(tempfile.mkdtemp(prefix="meshwork-pgconn-"))
    mesh = work / "mesh"
    shutil.copytree(FIXTURE, mesh)
    meshwork(binary, mesh, "apply")
    token = json.loads(meshwork(binary, mesh, "token", "create", "--principal", "ana", "--format", "json"))["token"]
    http_port, flight_port, pg_port = free_port(), free_port(), free_port()
    log = open(work / "serve.log", "w")
    server = subprocess.Popen(
        [binary, "-C", str(mesh), "serve", "--http-port", str(http_port), "--flight-sql-port", str(flight_port), "--postgres-port", str(pg_port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        connect(pg_port, token, 10)
        time.sleep(1)
        base = rss_mib(server.pid)
        print(f"| after | connections | RSS MiB | growth since warm-up MiB | per connection KiB |")
        print(f"|---|---:|---:|---:|---:|")
        print(f"| warm-up | 10 | {base:.1f} | 0 | - |")
        total = 0
        for r in range(1, args.rounds + 1):
            connect(pg_port, token, args.connections)
            total += args.connections
            time.sleep(1)
            now = rss_mib(server.pid)
            print(f"| round {r} | {total} | {now:.1f} | {now - base:.1f} | {(now - base) * 1024 / total:.0f} |")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
