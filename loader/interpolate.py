"""`${VAR}` and `${VAR:-default}` in values, after parsing (comments are never touched).

A value that is exactly one `${VAR}` takes the type YAML gives the substituted text, so
`count: ${N}` is an integer; in YAML a quoted `"${N}"` stays a string. `$${` writes a
literal `${`. Keys are never interpolated.

`${secret:VAR}`, and any `${VAR}` whose VAR the top-level `secret_env` lists, is a secret:
the value it lands in is recorded in `doc.secrets` (and shown as `****` wherever the plan is
shown). Only a node's `with:` value may take one; anywhere else the text would be printed.
"""

import re
from collections.abc import Mapping
from typing import Final

from loader.document import Document, KeyPath
from loader.problems import ERROR, Problem, format_path
from loader.read_yaml import resolve_plain

_TOKEN: Final = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE: Final = re.compile(r"^(secret:)?([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)
SECRET_ENV_KEY: Final = "secret_env"
SECRET_OUTSIDE_WITH: Final = "HR052"


class _Interpolator:
    def __init__(self, doc: Document, env: Mapping[str, str], keep_unset: bool = False) -> None:
        self.doc = doc
        self.env = env
        self.keep_unset = keep_unset
        self.problems: list[Problem] = []
        self.secret_names: frozenset[str] = frozenset()  # the file's `secret_env`

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
        secret_texts: list[str] = []
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
                             "write ${NAME}, ${NAME:-default} or ${secret:NAME}; write $${ for a literal ${")
                return text
            name, default = reference.group(2), reference.group(3)
            secret = reference.group(1) is not None or name in self.secret_names
            if secret and not (len(path) > 3 and path[0] == "nodes" and path[2] == "with"):
                self.problem(SECRET_OUTSIDE_WITH, path, "a secret variable is used outside a node's `with:`",
                             "a secret may only be a parameter value (nodes.NAME.with...), where it is "
                             "masked; use a plain ${NAME} here, or remove it from `secret_env`")
                return text
            names.append(name)
            found = self.env.get(name)
            if found is None and self.keep_unset:
                # `engine diff` without production's environment: the reference as written is
                # what is compared and shown, and no schema check judges it.
                self.doc.unresolved.add(path)
                found = token if inner is None else "${" + inner + "}"
            if found is None or (found == "" and default is not None):
                if default is None:
                    self.problem("HR050", path, f"environment variable '{name}' is not set",
                                 f"set {name}, or give a default: ${{{name}:-value}}")
                    return text
                found = default
            if secret:
                secret_texts.append(found)
            parts.append(found)
        parts.append(text[cursor:])
        if not names:
            return "".join(parts)
        if secret_texts:
            self.doc.secrets[path] = tuple(secret_texts)
        self.doc.interpolated[path] = tuple(names)
        whole = _TOKEN.fullmatch(text)
        if whole is not None and whole.group(1) is not None and path not in self.doc.quoted:
            return resolve_plain(parts[1])
        return "".join(parts)


def interpolate(doc: Document, env: Mapping[str, str], keep_unset: bool = False) -> list[Problem]:
    """Substitute variables in `doc.data` in place; return the problems found. With
    `keep_unset`, a variable that is not set stays as its reference text (`${VAR:-x}`)."""
    worker = _Interpolator(doc, env, keep_unset)
    listed = doc.data.get(SECRET_ENV_KEY) if isinstance(doc.data, dict) else None
    if isinstance(listed, list):  # read before any value is substituted; the schema checks its form
        worker.secret_names = frozenset(n for n in listed if isinstance(n, str))
    doc.data = worker.walk(doc.data, ())
    return worker.problems
