"""A suite result as JUnit XML: one `<testcase>` per case, a `<failure>` per failed case
listing its failed assertions, an `<error>` for a case whose job could not run."""

import xml.etree.ElementTree as ET

from spool_client.evals.suite import CaseResult, SuiteResult


def _testcase(suite: str, case: CaseResult) -> ET.Element:
    element = ET.Element(
        "testcase", classname=suite, name=case.case_name, time=f"{case.duration_ms / 1000:.3f}"
    )
    lines = [f"{a.assertion_type}: {a.detail}" for a in case.assertion_results if not a.passed]
    if case.error is not None:
        error = ET.SubElement(element, "error", message=case.error)
        error.text = "\n".join([case.error, *lines])
    elif not case.passed:
        failed = len(lines)
        message = f"{failed} of {len(case.assertion_results)} assertions failed"
        failure = ET.SubElement(element, "failure", message=message)
        failure.text = "\n".join(lines)
    return element


def to_junit_xml(result: SuiteResult, name: str = "spool-eval") -> str:
    errors = sum(1 for c in result.case_results if c.error is not None)
    seconds = sum(c.duration_ms for c in result.case_results) / 1000
    counts = {
        "tests": str(result.total_cases),
        "failures": str(result.failed - errors),
        "errors": str(errors),
        "time": f"{seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": name, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": name, **counts})
    suite.extend(_testcase(name, case) for case in result.case_results)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
