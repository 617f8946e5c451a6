#!/usr/bin/env python3
# validate_reports.py SCHEMA MODE FILE... — checks each report FILE against
# docs/tlsrpt-report.schema.json with python3-jsonschema (a validator that
# is not ours). MODE: `emitted` (the root and $defs/tlsp-report: what tlsp
# writes), `received` (the root: an RFC 8460 report as real reporters send
# it), `rejected` (the root must refuse it). One line per file, `ok FILE`
# or `FAIL FILE: why`; exit 0 when every file is as expected, 1 otherwise,
# 2 when the validator or the schema is missing or broken.
import json
import sys

try:
    import jsonschema
except ImportError as e:
    print("python3-jsonschema is missing: %s" % e)
    sys.exit(2)

schema_path, mode, files = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(schema_path, encoding="utf-8") as f:
    root = json.load(f)
cls = jsonschema.validators.validator_for(root)
if cls is not jsonschema.Draft202012Validator:
    print("the schema is not read as draft 2020-12")
    sys.exit(2)
cls.check_schema(root)
schema = dict(root)
if mode == "emitted":
    schema["allOf"] = [{"$ref": "#/$defs/tlsp-report"}]
elif mode not in ("received", "rejected"):
    print("unknown mode %s" % mode)
    sys.exit(2)
validator = cls(schema)

bad = 0
for path in files:
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if mode == "rejected":
        if errors:
            why = "; ".join("%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in errors)
            print("ok %s (rejected: %s)" % (path, why))
        else:
            print("FAIL %s: accepted, should be rejected" % path)
            bad += 1
    elif errors:
        for e in errors:
            print("FAIL %s: %s: %s" % (path, "/".join(map(str, e.absolute_path)), e.message))
        bad += 1
    else:
        print("ok %s" % path)
print("%d file(s), %d unexpected" % (len(files), bad))
sys.exit(1 if bad else 0)
