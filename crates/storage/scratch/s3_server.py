"""A local S3-compatible server for Meshwork's tests: moto's S3, plus a control path that
creates buckets and injects failures, so a test can make the endpoint fail mid-publish.

Prints its port on the first line of stdout and serves until its stdin closes (the test process
that started it exited), so no server outlives its tests.

Control requests (JSON bodies, POST):
  /__meshwork/bucket  {"bucket": NAME}                   create a bucket
  /__meshwork/fail    {"bucket": NAME, "method": "PUT", "contains": "_delta_log/", "status": 403,
                       "times": -1}                      fail matching requests (-1: until healed)
  /__meshwork/fail    {"bucket": NAME}                   heal: drop the bucket's failure rules
  /__meshwork/stats   {"bucket": NAME}                   requests by method and bytes sent for
                                                         the bucket since the last stats request
"""

import json
import sys
import threading

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.serving import make_server

RULES = []
STATS = {}
LOCK = threading.Lock()
BACKEND = DomainDispatcherApplication(create_backend_app)


def reply(start_response, status, body=b""):
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ["REQUEST_METHOD"]
    if path.startswith("/__meshwork/"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if path == "/__meshwork/bucket":
            s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(body["bucket"], "us-east-1")
        elif path == "/__meshwork/stats":
            with LOCK:
                stats = STATS.pop(body["bucket"], {})
            data = json.dumps(stats).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        elif path == "/__meshwork/fail":
            with LOCK:
                RULES[:] = [r for r in RULES if r["bucket"] != body["bucket"]]
                if "contains" in body:
                    RULES.append(dict(body))
        else:
            return reply(start_response, "404 Not Found")
        return reply(start_response, "204 No Content")
    with LOCK:
        for rule in RULES:
            if (
                (path == "/" + rule["bucket"] or path.startswith("/" + rule["bucket"] + "/"))
                and method == rule.get("method", method)
                and rule["contains"] in path
                and rule.get("times", -1) != 0
            ):
                if rule.get("times", -1) > 0:
                    rule["times"] -= 1
                status = int(rule.get("status", 403))
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length:
                    environ["wsgi.input"].read(length)
                code = "AccessDenied" if status == 403 else "InternalError"
                message = f"<Error><Code>{code}</Code><Message>injected failure</Message></Error>".encode()
                return reply(start_response, f"{status} Injected", message)
    bucket = path.split("/")[1] if path.count("/") >= 1 else ""
    with LOCK:
        stats = STATS.setdefault(bucket, {"bytes_sent": 0})
        stats[method] = stats.get(method, 0) + 1

    result = BACKEND(environ, start_response)

    def counted():
        sent = 0
        try:
            for chunk in result:
                sent += len(chunk)
                yield chunk
        finally:
            if hasattr(result, "close"):
                result.close()
            with LOCK:
                STATS.setdefault(bucket, {"bytes_sent": 0})["bytes_sent"] += sent

    return counted()


class QuietHandler(MotoRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
print(server.server_port, flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
