"""Rendering problems for people (compiler style), for tools (JSON) and for GitHub."""

import json

from loader.problems import Problem


def _source_line(problem: Problem, sources: dict[str, str]) -> str:
    text = sources.get(problem.file)
    if text is None or problem.line <= 0:
        return ""
    # TOML lines end at "\n" alone; YAML's reader also ends them at "\u2028" and the like.
    lines = text.split("\n") if problem.file.endswith(".toml") else text.splitlines()
    return lines[problem.line - 1] if problem.line <= len(lines) else ""


def render_text(problems: list[Problem], sources: dict[str, str]) -> str:
    """`file:line:col: CODE message`, the source line with a caret, and the hint."""
    out: list[str] = []
    for p in problems:
        severity = "warning: " if p.severity == "warning" else ""
        out.append(f"{p.file}:{p.line}:{p.column}: {p.code} {severity}{p.message}")
        line = _source_line(p, sources)
        if line:
            gutter = str(p.line)
            out.append(f" {gutter} | {line.expandtabs(1)}")
            out.append(f" {' ' * len(gutter)} | {' ' * max(p.column - 1, 0)}^")
        if p.hint:
            out.append(f"   = hint: {p.hint}")
    return "\n".join(out) + ("\n" if out else "")


def render_json(problems: list[Problem]) -> str:
    return json.dumps([p.to_dict() for p in problems], indent=2, ensure_ascii=False) + "\n"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(problems: list[Problem]) -> str:
    """GitHub Actions workflow commands, one annotation per problem."""
    out: list[str] = []
    for p in problems:
        level = "warning" if p.severity == "warning" else "error"
        props = f"file={escape_property(p.file)}"
        if p.line > 0:
            props += f",line={p.line},col={p.column}"
        props += f",title={escape_property(p.code)}"
        message = p.message + (f" (hint: {p.hint})" if p.hint else "")
        out.append(f"::{level} {props}::{escape_data(message)}")
    return "\n".join(out) + ("\n" if out else "")


def summary(problems: list[Problem], files: int) -> str:
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    plural = "" if files == 1 else "s"
    if not problems:
        return f"{files} file{plural} valid\n"
    return (f"{errors} error{'' if errors == 1 else 's'}, {warnings} warning{'' if warnings == 1 else 's'}"
            f" in {files} file{plural}\n")
