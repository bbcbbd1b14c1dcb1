"""Fails on checkov findings that infra/checkov-waivers.yaml does not waive.

    python scripts/policy_gate.py CHECKOV_JSON WAIVERS_YAML

Reads checkov's JSON report (`checkov -o json`) and the waivers (check id, resources, reason).
Exits non-zero, listing each problem, when a finding is not waived, a waiver has no reason,
or a waiver matches no finding (a stale waiver would hide the next resource it names).
"""

import json
import sys

import yaml  # PyYAML, a dependency of checkov: this runs with checkov's interpreter


def main(report_path: str, waivers_path: str) -> int:
    with open(report_path) as f:
        report = json.load(f)
    # One framework gives an object, several a list.
    reports = report if isinstance(report, list) else [report]
    findings = {
        (failed["check_id"], failed["resource"].split(".")[-1]): failed["check_name"]
        for r in reports
        for failed in r.get("results", {}).get("failed_checks", [])
    }
    parsing_errors = sum(r.get("summary", {}).get("parsing_errors", 0) for r in reports)

    with open(waivers_path) as f:
        waivers = (yaml.safe_load(f) or {}).get("waivers", [])

    problems = []
    if parsing_errors:
        problems.append(f"checkov could not parse {parsing_errors} file(s): nothing was checked")
    waived = set()
    for waiver in waivers:
        check = waiver.get("check", "?")
        if not str(waiver.get("reason", "")).strip():
            problems.append(f"waiver {check} has no reason")
        for resource in waiver.get("resources") or []:
            if (check, resource) in findings:
                waived.add((check, resource))
            else:
                problems.append(f"waiver {check} for {resource} matches no finding: remove it")
    for (check, resource), name in sorted(findings.items()):
        if (check, resource) not in waived:
            problems.append(f"{check} {resource}: {name} (fix it, or waive it with a reason)")

    for problem in problems:
        print(f"policy: {problem}", file=sys.stderr)
    print(f"policy: {len(findings)} finding(s), {len(waived)} waived, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
