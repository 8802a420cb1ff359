"""What the interop suites share: a check counter, the `meshwork` CLI, tokens, free ports, row
normalisation and a `meshwork serve` started on free ports over a mesh, stopped with SIGTERM.
"""

import datetime
import fnmatch
import decimal
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Checks:
    """Counts passed and failed checks; prints one line per check.

    `gaps` maps name patterns (fnmatch) of checks known to fail today to the reason, as
    documented: such a check failing prints `gap` and does not fail the run; passing fails it
    (`gap closed`), so the list is kept true.
    """

    def __init__(self, gaps=None):
        self.passed, self.failed, self.gaps = 0, 0, 0
        self.known_gaps = gaps or {}

    def __call__(self, name, condition, detail=""):
        reason = next((why for pattern, why in self.known_gaps.items() if fnmatch.fnmatchcase(name, pattern)), None)
        if reason is not None:
            if condition:
                self.failed += 1
                print(f"FAIL  {name}\n      gap closed: it passes now; remove it from the known gaps")
            else:
                self.gaps += 1
                print(f"gap   {name} (known: {reason})")
            return condition
        if condition:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}")
            if detail:
                print(f"      {detail}")
        return condition

    def attempt(self, name, body):
        """Runs `body()`, which returns `(condition, detail)`; an exception is a failed check."""
        try:
            condition, detail = body()
        except Exception as err:  # noqa: BLE001 - any client error is a failed check, with its message
            condition, detail = False, f"{type(err).__name__}: {err}"
        return self(name, condition, detail)

    def summary(self):
        gaps = f", {self.gaps} known gaps" if self.gaps else ""
        print(f"{self.passed} passed, {self.failed} failed{gaps}")
        return 1 if self.failed else 0


def meshwork(binary, mesh, *args):
    result = subprocess.run([binary, "-C", str(mesh), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`meshwork {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def token_for(binary, mesh, principal, expires="30d"):
    return json.loads(meshwork(binary, mesh, "token", "create", "--principal", principal, "--expires", expires, "--format", "json"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def norm(value):
    """One comparable text form for every client's values."""
    if value is None:
        return None
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def norm_rows(rows):
    return [tuple(norm(v) for v in row) for row in rows]


def reference(binary, mesh, principal, sql):
    """The rows `meshwork query --as PRINCIPAL` answers: what every client must answer too."""
    objects = json.loads(meshwork(binary, mesh, "--as", principal, "query", "--format", "json", sql), parse_float=decimal.Decimal)
    return [tuple(norm(v) for v in row.values()) for row in objects]


def http(port, path, token=None, body=None, accept="application/json", raw_auth=None):
    """`raw_auth`: an `Authorization` header sent as is (malformed credentials)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET")
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    request.add_header("Accept", accept)
    if raw_auth is not None:
        request.add_header("Authorization", raw_auth)
    elif token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Server:
    """`meshwork serve` over `mesh` on free ports, its log in `log_path`."""

    def __init__(self, binary, mesh, log_path):
        self.http_port, self.flight_port, self.pg_port = free_port(), free_port(), free_port()
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        command = [binary, "-C", str(mesh), "serve", "--http-port", str(self.http_port), "--flight-sql-port", str(self.flight_port), "--postgres-port", str(self.pg_port)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        for _ in range(150):
            try:
                if http(self.http_port, "/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.process.kill()
        sys.exit(f"the server did not start:\n{self.log_path.read_text()}")

    def log_tail(self, chars=6000):
        return self.log_path.read_text()[-chars:]

    def stop(self):
        """SIGTERM, then the exit code (a kill after 20 s gives None)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None
        finally:
            self._log.close()
