"""Validates OpenLineage run events (one JSON document per line on stdin) against the vendored
official JSON schemas in `spec/`: each event against `OpenLineage.json` (2-0-2) and its
`RunEvent` definition, each facet against the schema its `_schemaURL` names, with formats
(`uuid`, `date-time`, `uri`) checked. Prints one line per problem and exits 1 if there is one."""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC = pathlib.Path(__file__).parent / "spec"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

schemas = {}
for path in sorted(SPEC.glob("*.json")):
    schema = json.loads(path.read_text())
    schemas[schema["$id"]] = schema
registry = Registry().with_resources((uri, Resource.from_contents(s)) for uri, s in schemas.items())
checker = Draft202012Validator.FORMAT_CHECKER
missing = {"uuid", "date-time", "uri"} - set(checker.checkers)
if missing:
    sys.exit(f"the format checker cannot check {sorted(missing)}: install jsonschema[format-nongpl]")


def validator(ref):
    return Draft202012Validator({"$ref": ref}, registry=registry, format_checker=checker)


problems = []
events = 0
facets = 0


def check(where, instance, ref):
    for error in validator(ref).iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path)
        message = error.message if len(error.message) <= 300 else error.message[:300] + "…"
        problems.append(f"{where}: {path}: {message}")


def check_facets(where, found):
    global facets
    for name, facet in (found or {}).items():
        url = facet.get("_schemaURL", "")
        base = url.split("#")[0]
        if base not in schemas:
            problems.append(f"{where}.{name}: `_schemaURL` {url!r} names no vendored schema")
            continue
        facets += 1
        check(f"{where}.{name}", facet, url)


for number, line in enumerate(sys.stdin, 1):
    if not line.strip():
        continue
    event = json.loads(line)
    events += 1
    where = f"event {number} ({event.get('eventType')} {event.get('job', {}).get('name')})"
    if event.get("schemaURL") != RUN_EVENT:
        problems.append(f"{where}: schemaURL is {event.get('schemaURL')!r}, expected {RUN_EVENT!r}")
    check(where, event, "https://openlineage.io/spec/2-0-2/OpenLineage.json")
    check(where, event, RUN_EVENT)
    check_facets(f"{where} run.facets", event.get("run", {}).get("facets"))
    check_facets(f"{where} job.facets", event.get("job", {}).get("facets"))
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side, [])):
            check_facets(f"{where} {side}[{i}].facets", dataset.get("facets"))

for problem in problems:
    print(problem)
print(f"checked {events} events and {facets} facets, {len(problems)} problems", file=sys.stderr)
sys.exit(1 if problems or events == 0 else 0)
