#!/usr/bin/env python3
"""Checks nhid's OCSF output the way a SIEM's ingest would, with tools nhid did not write.

    check.py SCHEMA_DIR FINDINGS.jsonl...

1. Compiles the OCSF schema source in SCHEMA_DIR (../shared/ocsf-schema) with ocsf-lib, the
   OCSF project's own Python library, and turns the Detection Finding class (no profiles:
   nhid applies none) and the Incident Finding class (with its implied `incident` profile)
   into JSON Schema with ocsf-json-schema (objects embedded).
2. Validates every line of every file against the class its class_uid names (jsonschema,
   draft 2020-12); another class is an error.
3. Reads every finding back as a SIEM's OCSF mapping would, by the schema's attribute paths
   only (no knowledge of nhid's own schema): a detection finding's uid, time and severity,
   the principal and its credential, the call and where it came from; an incident's uid,
   activity, severity, time span and the findings it lists. The caller compares them with
   nhid's own alerts and incidents of the same replay.

Prints one JSON line: {"validated": n, "findings": [{...read back...}], "incidents": [...],
"missing_recommended": {attribute: count}} and exits 1 on the first file with an invalid
finding (every error of it is printed), 2 when it could not check at all.

(py-ocsf-models, the pydantic OCSF package on PyPI, was tried as the consumer and left out:
version 0.10.0 models an older OCSF, rejecting observable type ids 11-19 and 31 that 1.9
defines and requiring service.uid and service.version where the schema asks for a name or a
uid.)

Two corrections to the compiled schema before it is used, each a defect of the tools, not a
change of what OCSF requires:
- ocsf-lib 0.10.4's `--set-object-types` compares `type[:-2] == "_t"` (never true), so object
  references keep the object's name as their type; they are set to `object_t` here, as the
  schema server exports them.
- ocsf-lib writes absent fields as null; ocsf-json-schema reads `"range": null` as a range.
  Nulls are dropped.
- ocsf-lib's merge gives an object the constraints of the object it extends over its own
  (network_endpoint gets endpoint's parent's "name or uid" instead of its own list, which
  includes ip); each object's constraints are taken from its own source file when it has any.
"""

import json
import pathlib
import subprocess
import sys
import traceback

import jsonschema
from ocsf_json_schema import OcsfJsonSchema, OcsfJsonSchemaEmbedded


def prune(x):
    if isinstance(x, dict):
        return {k: prune(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [prune(v) for v in x]
    return x


def compiled(schema_dir: pathlib.Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "ocsf.compile", "--set-object-types", str(schema_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    schema = prune(json.loads(out.stdout))
    for defn in list(schema["classes"].values()) + list(schema["objects"].values()):
        for attr in defn.get("attributes", {}).values():
            kind = attr.get("type")
            if kind not in schema["types"] and kind in schema["objects"]:
                attr["object_type"], attr["type"] = kind, "object_t"
    for source in (schema_dir / "objects").glob("*.json"):
        own = json.loads(source.read_text())
        name = own.get("name")
        if "constraints" in own and name in schema["objects"]:
            schema["objects"][name]["constraints"] = own["constraints"]
    return schema


CLASSES = {2004: ("detection_finding", []), 2005: ("incident_finding", ["incident"])}


def missing_recommended(finding: dict, schema: dict) -> list:
    attrs = schema["classes"][CLASSES[finding["class_uid"]][0]]["attributes"]
    return sorted(
        name
        for name, a in attrs.items()
        if a.get("requirement") == "recommended" and "profile" not in a and name not in finding
    )


def read_back(finding: dict) -> dict:
    """What a SIEM's OCSF mapping takes from a Detection Finding."""
    evidence = finding.get("evidences", [{}])[0]
    user = evidence.get("actor", {}).get("user", {})
    credentials = user.get("programmatic_credentials", [])
    return {
        "uid": finding["finding_info"]["uid"],
        "time": finding["time"],
        "severity": finding["severity_id"],
        "analytic": finding["finding_info"].get("analytic", {}).get("uid"),
        "user": user.get("uid"),
        "credential": credentials[0]["uid"] if credentials else None,
        "session": evidence.get("actor", {}).get("session", {}).get("uid"),
        "operation": evidence.get("api", {}).get("operation"),
        "ip": evidence.get("src_endpoint", {}).get("ip"),
    }


def read_back_incident(finding: dict) -> dict:
    """What a SIEM's OCSF mapping takes from an Incident Finding."""
    return {
        "uid": finding["metadata"]["correlation_uid"],
        "activity": finding["activity_id"],
        "severity": finding["severity_id"],
        "start": finding.get("start_time"),
        "end": finding.get("end_time"),
        "findings": [f["uid"] for f in finding["finding_info_list"]],
        "assignee_group": finding.get("assignee_group", {}).get("name"),
    }


def main() -> int:
    schema_dir, files = pathlib.Path(sys.argv[1]), sys.argv[2:]
    schema = compiled(schema_dir)
    embedded = OcsfJsonSchemaEmbedded(OcsfJsonSchema(schema))
    validators = {
        uid: jsonschema.Draft202012Validator(embedded.get_class_schema(name, profiles))
        for uid, (name, profiles) in CLASSES.items()
    }
    validated, read, incidents, missing = 0, [], [], {}
    for path in files:
        errors = []
        for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
            finding = json.loads(line)
            validator = validators.get(finding.get("class_uid"))
            if validator is None:
                errors.append(f"{path}:{n}: class_uid {finding.get('class_uid')!r} is not a class nhid writes")
                continue
            invalid = [
                f"{path}:{n}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in validator.iter_errors(finding)
            ]
            errors.extend(invalid)
            if invalid:
                continue
            validated += 1
            for name in missing_recommended(finding, schema):
                missing[name] = missing.get(name, 0) + 1
            if finding["class_uid"] == 2005:
                incidents.append(read_back_incident(finding))
            else:
                read.append(read_back(finding))
        if errors:
            print("\n".join(errors[:50]), file=sys.stderr)
            print(f"{len(errors)} errors in {path}", file=sys.stderr)
            return 1
    print(json.dumps({"validated": validated, "findings": read, "incidents": incidents, "missing_recommended": missing}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        # Exit 1 means invalid findings; a checker that failed to run is something else.
        traceback.print_exc()
        sys.exit(2)
