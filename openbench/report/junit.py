"""JUnit XML for CI systems: one test case per gate rule per task."""

from __future__ import annotations

from xml.etree import ElementTree as ET


def gate_junit(decision) -> str:
    failures = sum(not r.passed for r in decision.results)
    suite = ET.Element(
        "testsuite",
        name=f"openbench gate: {decision.candidate} vs {decision.baseline}",
        tests=str(len(decision.results)),
        failures=str(failures),
        errors="0",
    )
    for r in decision.results:
        case = ET.SubElement(suite, "testcase", classname=f"openbench.gate.{r.task}", name=r.rule)
        if not r.passed:
            ET.SubElement(case, "failure", message=r.detail).text = r.detail
        else:
            ET.SubElement(case, "system-out").text = r.detail
    if decision.warnings:
        ET.SubElement(suite, "system-err").text = "\n".join(decision.warnings)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
