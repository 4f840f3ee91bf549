"""What `engine test` prints: text for people, JSON for tools, JUnit XML for CI systems,
GitHub workflow annotations."""

import json
import xml.etree.ElementTree as ET
from typing import Final

from adapters.testing.suite import FAILED, FileOutcome, TestResult
from loader.problems import Problem, has_errors
from loader.report import escape_data, escape_property, render_github
from loader.report import render_text as render_problems

FORMATS: Final = ("text", "json", "junit", "github")


def _problems(outcomes: list[FileOutcome]) -> list[Problem]:
    return [p for o in outcomes for p in o.problems]


def _results(outcomes: list[FileOutcome]) -> list[TestResult]:
    return [r for o in outcomes for r in o.results]


def summary(outcomes: list[FileOutcome], seconds: float) -> str:
    results = _results(outcomes)
    failed = sum(1 for r in results if r.outcome == FAILED)
    broken = sum(1 for o in outcomes if has_errors(o.problems))
    parts = [f"{len(results) - failed} passed"]
    if failed:
        parts.append(f"{failed} failed")
    if broken:
        parts.append(f"{broken} test file{'s' if broken != 1 else ''} with problems")
    return ", ".join(parts) + f" in {seconds:.2f} s"


def render_text(outcomes: list[FileOutcome], seconds: float) -> str:
    out: list[str] = []
    problems = _problems(outcomes)
    if problems:
        sources = {o.file.file: o.file.text for o in outcomes}
        sources.update({o.file.graph.file: o.file.graph.text for o in outcomes if o.file.graph is not None})
        out.append(render_problems(problems, sources).rstrip("\n"))
    for outcome in outcomes:
        for r in outcome.results:
            note = f" (snapshot {r.snapshot})" if r.snapshot else ""
            out.append(f"{'PASS' if r.outcome != FAILED else 'FAIL'} {r.file}::{r.name} "
                       f"({r.duration_s * 1000:.0f} ms){note}")
            for f in r.failures:
                out.append(f"  {r.file}:{f.line}: {f.message}")
                out.extend(f"      {d}" for d in f.details)
        out.extend(outcome.notes)
    out.append(summary(outcomes, seconds))
    return "\n".join(out) + "\n"


def render_json(outcomes: list[FileOutcome], seconds: float) -> str:
    tests = [{
        "file": r.file, "name": r.name, "line": r.line, "outcome": r.outcome,
        "duration_s": round(r.duration_s, 6), "snapshot": r.snapshot,
        "failures": [{"line": f.line, "column": f.column, "message": f.message, "details": f.details}
                     for f in r.failures],
    } for r in _results(outcomes)]
    results = _results(outcomes)
    return json.dumps({
        "tests": tests,
        "problems": [p.to_dict() for p in _problems(outcomes)],
        "summary": {"passed": sum(1 for r in results if r.outcome != FAILED),
                    "failed": sum(1 for r in results if r.outcome == FAILED),
                    "seconds": round(seconds, 6)},
    }, indent=2, ensure_ascii=False) + "\n"


def render_junit(outcomes: list[FileOutcome], seconds: float) -> str:
    root = ET.Element("testsuites", name="engine test", time=f"{seconds:.6f}")
    for outcome in outcomes:
        results = outcome.results
        suite = ET.SubElement(root, "testsuite", name=outcome.file.file, tests=str(len(results) + (
            1 if has_errors(outcome.problems) else 0)), failures=str(sum(1 for r in results if r.outcome == FAILED)),
            errors="1" if has_errors(outcome.problems) else "0",
            time=f"{sum(r.duration_s for r in results):.6f}")
        if has_errors(outcome.problems):
            case = ET.SubElement(suite, "testcase", classname=outcome.file.file, name="(load)", time="0")
            error = ET.SubElement(case, "error", message="the test file or its graph has problems")
            error.text = "\n".join(f"{p.file}:{p.line}:{p.column}: {p.code} {p.message}" for p in outcome.problems)
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=r.file, name=r.name, file=r.file, line=str(r.line),
                                 time=f"{r.duration_s:.6f}")
            for f in r.failures:
                failure = ET.SubElement(case, "failure", message=f.message)
                failure.text = "\n".join([f"{r.file}:{f.line}: {f.message}"] + f.details)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_github_annotations(outcomes: list[FileOutcome], seconds: float) -> str:
    out = [render_github(_problems(outcomes)).rstrip("\n")]
    for r in _results(outcomes):
        for f in r.failures:
            text = "\n".join([f.message] + f.details)
            out.append(f"::error file={escape_property(r.file)},line={f.line},"
                       f"title={escape_property('test ' + r.name)}::{escape_data(text)}")
    out.append(summary(outcomes, seconds))
    return "\n".join(line for line in out if line) + "\n"
