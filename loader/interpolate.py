"""`${VAR}` and `${VAR:-default}` in values, after parsing (comments are never touched).

A value that is exactly one `${VAR}` takes the type YAML gives the substituted text, so
`count: ${N}` is an integer; in YAML a quoted `"${N}"` stays a string. `$${` writes a
literal `${`. Keys are never interpolated.
"""

import re
from collections.abc import Mapping
from typing import Final

from loader.document import Document, KeyPath
from loader.problems import ERROR, Problem, format_path
from loader.read_yaml import resolve_plain

_TOKEN: Final = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE: Final = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)


class _Interpolator:
    def __init__(self, doc: Document, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.env = env
        self.problems: list[Problem] = []

    def problem(self, code: str, path: KeyPath, message: str, hint: str) -> None:
        self.doc.unresolved.add(path)
        pos = self.doc.locate(path)
        self.problems.append(Problem(code, ERROR, self.doc.file, pos.line, pos.column,
                                     format_path(path), message, hint))

    def walk(self, value: object, path: KeyPath) -> object:
        if isinstance(value, dict):
            return {k: self.walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self.substitute(value, path)
        return value

    def substitute(self, text: str, path: KeyPath) -> object:
        names: list[str] = []
        parts: list[str] = []
        cursor = 0
        for match in _TOKEN.finditer(text):
            parts.append(text[cursor:match.start()])
            cursor = match.end()
            token = match.group(0)
            if token == "$${":
                parts.append("${")
                continue
            inner = match.group(1)
            reference = _REFERENCE.match(inner) if inner is not None else None
            if reference is None:
                shown = token if inner is None else "${" + inner + "}"
                self.problem("HR051", path, f"malformed interpolation '{shown}'",
                             "write ${NAME} or ${NAME:-default}; write $${ for a literal ${")
                return text
            name, default = reference.group(1), reference.group(2)
            names.append(name)
            found = self.env.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    self.problem("HR050", path, f"environment variable '{name}' is not set",
                                 f"set {name}, or give a default: ${{{name}:-value}}")
                    return text
                found = default
            parts.append(found)
        parts.append(text[cursor:])
        if not names:
            return "".join(parts)
        self.doc.interpolated[path] = tuple(names)
        whole = _TOKEN.fullmatch(text)
        if whole is not None and whole.group(1) is not None and path not in self.doc.quoted:
            return resolve_plain(parts[1])
        return "".join(parts)


def interpolate(doc: Document, env: Mapping[str, str]) -> list[Problem]:
    """Substitute variables in `doc.data` in place; return the problems found."""
    worker = _Interpolator(doc, env)
    doc.data = worker.walk(doc.data, ())
    return worker.problems
