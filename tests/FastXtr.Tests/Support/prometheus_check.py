"""Reads Prometheus text exposition from stdin with the reference parser (prometheus_client.parser) and checks the
naming rules (https://prometheus.io/docs/practices/naming/): names match the data model's pattern, counters end in
_total, FastXtr's own metrics start with fastxtr_ and name their unit (seconds, bytes) where they have one.
Prints one JSON object: {"problems": [...], "samples": {"name{label=value,...}": value, ...}}."""
import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
text = sys.stdin.read()
problems = []
samples = {}
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser's own message says where
    print(json.dumps({"problems": [f"does not parse: {e}"], "samples": {}}))
    sys.exit(0)
# The parser adds _total to a counter that lacks it, so the rule is checked on the text: in the text format a counter's
# TYPE line names the series as it is exposed.
for line in text.splitlines():
    parts = line.split()
    if len(parts) == 4 and parts[:2] == ["#", "TYPE"] and parts[3] == "counter" and not parts[2].endswith("_total"):
        problems.append(f"{parts[2]}: a counter whose name does not end in _total")
for family in families:
    if not NAME.match(family.name):
        problems.append(f"{family.name}: not a valid metric name")
    if family.name.startswith("fastxtr_"):
        if family.type == "histogram" and not family.name.endswith("_seconds"):
            problems.append(f"{family.name}: a histogram without its unit")
        if any(word in family.name for word in ("_ms", "_millis", "_kb", "_mb")):
            problems.append(f"{family.name}: use base units (seconds, bytes)")
        if not family.documentation:
            problems.append(f"{family.name}: no HELP text")
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps({"problems": problems, "samples": samples}))
