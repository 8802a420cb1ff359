"""Open standards with a third-party tool: every product of the example mesh exported as an ODCS
v3.1.0 contract and an ODPS v1.0.0 product; each contract passes the ODCS JSON schema that
datacontract-cli ships, `datacontract lint`, and `datacontract test` run against `meshwork
serve`'s Postgres port as the owning domain's member (datacontract-cli checking our products
through our own output port); each product document meets the ODPS v1.0.0 schema's rules.

Usage: check_standards.py path/to/meshwork  (the venv needs datacontract-cli[postgres] and
jsonschema; `.ci/run` installs them)
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

from served import Checks, Server, meshwork, token_for

PRODUCTS = {
    # product: the principal whose token tests it (a member of the owning domain, who reads
    # the product and its upstreams in full: unfiltered, unmasked)
    "sales.customers": "sam",
    "sales.orders": "sam",
    "sales.daily_sales": "sam",
    "marketing.campaigns": "mia",
    "marketing.campaign_roi": "mia",
    "finance.revenue_by_region": "fred",
    "finance.customer_value": "fred",
}


def odcs_schema():
    import datacontract

    path = Path(datacontract.__file__).parent / "schemas" / "odcs-3.1.0.schema.json"
    return json.loads(path.read_text())


def odps_problems(doc):
    """The rules of the ODPS v1.0.0 JSON schema (bitol-io/open-data-product-standard,
    schema/odps-json-schema-v1.0.0.json) for the parts Meshwork writes, restated here: no
    package on a registry ships that schema."""
    problems = []
    top = {"apiVersion", "kind", "id", "name", "version", "status", "domain", "tenant", "authoritativeDefinitions", "description",
           "customProperties", "tags", "inputPorts", "outputPorts", "managementPorts", "support", "team", "productCreatedTs"}
    for key in ("apiVersion", "kind", "id", "status"):
        if key not in doc:
            problems.append(f"missing required `{key}`")
    problems += [f"unknown field `{k}`" for k in doc if k not in top]
    if doc.get("apiVersion") not in ("v0.9.0", "v1.0.0"):
        problems.append("apiVersion")
    if doc.get("kind") != "DataProduct":
        problems.append("kind")
    custom = {"property", "value", "description"}
    def customs(where, items):
        for c in items or []:
            if not {"property", "value"} <= set(c) or set(c) - custom:
                problems.append(f"{where}: custom property {c}")
    customs("customProperties", doc.get("customProperties"))
    if set(doc.get("description", {})) - {"purpose", "limitations", "usage", "authoritativeDefinitions", "customProperties"}:
        problems.append("description")
    for port in doc.get("inputPorts", []):
        if not {"name", "version", "contractId"} <= set(port) or set(port) - {"name", "version", "contractId", "tags", "customProperties", "authoritativeDefinitions"}:
            problems.append(f"input port {port}")
        customs("input port", port.get("customProperties"))
    for port in doc.get("outputPorts", []):
        allowed = {"name", "description", "type", "version", "contractId", "sbom", "inputContracts", "tags", "customProperties", "authoritativeDefinitions"}
        if not {"name", "version"} <= set(port) or set(port) - allowed:
            problems.append(f"output port {port}")
        for contract in port.get("inputContracts", []):
            if set(contract) != {"id", "version"}:
                problems.append(f"input contract {contract}")
    team = doc.get("team", {})
    if set(team) - {"name", "description", "members", "tags", "customProperties", "authoritativeDefinitions"}:
        problems.append("team")
    for member in team.get("members", []):
        if "username" not in member or set(member) - {"username", "name", "description", "role", "dateIn", "dateOut", "replacedByUsername", "tags", "customProperties", "authoritativeDefinitions"}:
            problems.append(f"team member {member}")
    return problems


def datacontract(venv_bin, *args, env=None):
    return subprocess.run([str(venv_bin / "datacontract"), *args], capture_output=True, text=True, env=env, timeout=600)


def failed_checks(results_file):
    try:
        results = json.loads(Path(results_file).read_text())
    except (OSError, ValueError):
        return "no results written"
    bad = [f"{c.get('name')}: {c.get('result')} {c.get('reason') or ''}" for c in results.get("checks", []) if c.get("result") not in ("passed",)]
    return "; ".join(bad) or f"result {results.get('result')}"


def main():
    binary = str(Path(sys.argv[1]).resolve())
    venv_bin = Path(sys.executable).parent
    check = Checks()
    schema = odcs_schema()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mesh = tmp / "example"
        meshwork(binary, tmp, "init", str(mesh), "--example", "--orders", "3000", "--seed", "11")
        meshwork(binary, mesh, "apply")
        server = Server(binary, mesh, tmp / "serve.log")
        try:
            # The contracts name the servers `mesh.yaml` configures: the ports this run serves on.
            with open(mesh / "mesh.yaml", "a") as config:
                config.write(f"server:\n  bind: 127.0.0.1\n  http_port: {server.http_port}\n  flight_sql_port: {server.flight_port}\n  postgres_port: {server.pg_port}\n")
            tokens = {who: token_for(binary, mesh, who)["token"] for who in set(PRODUCTS.values())}
            for product, who in PRODUCTS.items():
                contract = tmp / f"{product}.odcs.yaml"
                meshwork(binary, mesh, "export", product, "--format", "odcs", "--output", str(contract))
                document = yaml.safe_load(contract.read_text())
                errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(document), key=str)
                check(f"{product}: the contract passes the ODCS v3.1.0 JSON schema", not errors, "; ".join(e.message for e in errors[:3]))

                lint = datacontract(venv_bin, "lint", str(contract))
                check(f"{product}: datacontract lint", lint.returncode == 0, (lint.stdout + lint.stderr)[-1500:])

                results = tmp / f"{product}.results.json"
                env = dict(os.environ, DATACONTRACT_POSTGRES_USERNAME=who, DATACONTRACT_POSTGRES_PASSWORD=tokens[who])
                test = datacontract(venv_bin, "test", str(contract), "--server", "meshwork-postgres", "--output-format", "json", "--output", str(results), env=env)
                check(f"{product}: datacontract test through the Postgres port as {who}", test.returncode == 0, failed_checks(results) + "\n" + (test.stdout + test.stderr)[-1500:])

                product_doc = tmp / f"{product}.odps.yaml"
                meshwork(binary, mesh, "export", product, "--format", "odps", "--output", str(product_doc))
                problems = odps_problems(yaml.safe_load(product_doc.read_text()))
                check(f"{product}: the product meets the ODPS v1.0.0 schema", not problems, "; ".join(problems))
        finally:
            code = server.stop()
            check("the server stops cleanly", code == 0, server.log_tail())
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
