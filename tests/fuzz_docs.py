"""Generated graph documents for tests/test_fuzz_loader.py: mutations of the shipped graphs
(every format version) and of the broken-file corpus, written as YAML or TOML text.

Each case comes from its own `random.Random(f"{seed}:{shard}:{index}")`, so one failing
case replays alone from the seed the failure message prints.
"""

import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import tomli_w

from loader.interpolate import interpolate
from loader.read_toml import read_toml
from loader.read_yaml import read_yaml
from tests.conftest import ROOT

SEED_ENV: Final = "HEADRACE_FUZZ_SEED"


@dataclass(frozen=True)
class Case:
    name: str  # the file name: its suffix picks the reader
    text: str
    how: str  # the mutations applied, for the failure message


def _sources() -> list[tuple[str, str]]:
    folders = [ROOT / "graphs", ROOT / "tests/graphs/v1", ROOT / "tests/graphs/invalid"]
    out: list[tuple[str, str]] = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".yaml", ".yml", ".toml"):
                try:
                    out.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
                except UnicodeDecodeError:  # the HR001 files of the corpus are not UTF-8 on purpose
                    continue
    return out


SOURCES: Final = _sources()


def _parsed() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for name, text in SOURCES:
        doc, problems = (read_toml if name.endswith(".toml") else read_yaml)(name, text)
        if not problems and isinstance(doc.data, dict):
            # `${VAR:-default}` written back in quotes would stay text: use the defaults.
            unresolved = interpolate(doc, {})
            if not unresolved:
                out.append((name, doc.data))
    return out


PARSED: Final = _parsed()
YAML_SOURCES: Final = [(n, t) for n, t in SOURCES if not n.endswith(".toml")]
TOML_SOURCES: Final = [(n, t) for n, t in SOURCES if n.endswith(".toml")]

# --- values ------------------------------------------------------------------------------------

KEYS: Final = [
    "version", "name", "nodes", "type", "from", "with", "on_error", "defaults", "edge", "capacity", "policy",
    "key", "node", "port", "set", "where", "fields", "count", "rate", "by", "window", "size", "every",
    "routes", "mode", "path", "format", "keep", "remove", "rename", "action", "attempts", "backoff", "then",
    "storage", "durable", "columns", "segment", "secret_fields", "description", "x", "<<", "", " ", "a.b",
    "Nodes", "nodes ", "tÿpe", "ノード", "\u202eevil", "e\u0301", "\x00", "\t", "${N}", "__class__",
]
UNICODE: Final = [
    "é", "ß", "ノード", "\u202e", "\u200b", "\ufeff", "e\u0301", "🚀", "\U0010ffff", "\u2028", "\u2029", "\x85",
    "\x00", "\x07", "\x1b[31m", "\uff11\uff12", "٣", "İ", "ﬁ", "\ud800", "\udfff", "\r", "\r\n", "\t", "\\", '"', "'",
]
EXPRESSIONS: Final = [
    "i", "i % 10", "amount * 100", "x.__class__", "().__class__.__bases__[0].__subclasses__()", "__import__('os')",
    "count()", "sum(x)", "2 ** 10 ** 10", "'a' * 10 ** 9", "lower(", "a = 1", "[x for x in y]", "lambda: 1",
    "f'{x}'", "a & b", "1" * 5000, "(" * 200 + "1" + ")" * 200, "not " * 300 + "x", "-" * 3000 + "1", "🚀 > 1",
    "exists(a.b[0])", "coalesce(a, b, 'c')", "${EXPR}", "x\n and y", "'\\N{BOM}'", "b'x'", "...", "*a",
]


def huge_number(rng: random.Random) -> object:
    return rng.choice([
        10 ** 400, -(10 ** 400), 2 ** 63, 2 ** 64 + 1, -(2 ** 63) - 1, 1e308, -1e308, 5e-324, -0.0, 0, -1,
        10 ** rng.randint(20, 4000), 1.5, 7.0, 10 ** 18,
    ])


def text_value(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 6)))
    if kind == 1:
        return rng.choice(EXPRESSIONS)
    if kind == 2:
        return rng.choice(["block", "coalesce", "latest", "drop_oldest", "memory", "lmdb", "jsonl", "csv", "retry",
                           "stop", "dead_letter", "tumbling", "sliding", "session", "all", "first", "null", "100ms",
                           "1 s", "-5s", "1e3s", "9" * 30 + "d", "orders", "out", "nodes.out", "a.b.c", "unmatched"])
    if kind == 3:
        return "x" * rng.choice([0, 1, 64, 4097, 100_000])
    if kind == 4:
        return rng.choice(["${N}", "${N:-7}", "${", "$${x}", "${N:-${M}}", "${secret:token}", "${1}", "${N:-}"])
    return "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(0, 12)))


def nested(rng: random.Random, depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {rng.choice(KEYS[:40]): value}
    return value


def random_value(rng: random.Random, budget: int = 3) -> object:
    kind = rng.randrange(10)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return huge_number(rng)
    if kind == 3:
        return rng.randint(-3, 20_000)
    if kind in (4, 5):
        return text_value(rng)
    if kind == 6 and budget > 0:
        return [random_value(rng, budget - 1) for _ in range(rng.randint(0, 3))]
    if kind == 7 and budget > 0:
        return {rng.choice(KEYS): random_value(rng, budget - 1) for _ in range(rng.randint(0, 3))}
    if kind == 8 and budget > 0:
        return nested(rng, rng.choice([5, 50, 200, 300, 400]), random_value(rng, 0))
    return rng.uniform(-1e6, 1e6)


# --- structural mutations ------------------------------------------------------------------------


def paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += paths(child, prefix + (i,))
    return out


def _at(data: object, path: tuple[object, ...]) -> object:
    for part in path:
        data = data[part]  # type: ignore[index]
    return data


def mutate_data(rng: random.Random, data: object, steps: int) -> list[str]:
    """Change `data` in place `steps` times; returns what was done."""
    done: list[str] = []
    for _ in range(steps):
        candidates = [p for p in paths(data) if 0 < len(p) <= 12]  # not inside a nesting made before
        if not candidates:
            break
        path = rng.choice(candidates)
        parent = _at(data, path[:-1])
        last = path[-1]
        action = rng.randrange(6)
        if action == 0 and isinstance(parent, dict):
            del parent[last]
            done.append(f"del {path}")
        elif action == 1 and isinstance(parent, dict):
            key = rng.choice(KEYS) if rng.random() < 0.7 else text_value(rng)
            parent[key] = random_value(rng)
            done.append(f"add {path[:-1] + (key,)}")
        elif action == 2 and isinstance(parent, dict):
            key = rng.choice(KEYS) + rng.choice(["", "_", "s", "é"])
            parent[key] = parent.pop(last)
            done.append(f"rename {path} -> {key!r}")
        elif action == 3:
            # Another value found in the documents: the right kind of thing in the wrong place.
            _, other = rng.choice(PARSED)
            parent[last] = json.loads(json.dumps(_at(other, rng.choice(paths(other)))))  # type: ignore[index]
            done.append(f"graft {path}")
        else:
            parent[last] = random_value(rng)  # type: ignore[index]
            done.append(f"set {path}")
    return done


def _yaml_text(rng: random.Random, data: object) -> str:
    if rng.random() < 0.5:
        return json.dumps(data, ensure_ascii=rng.random() < 0.5)
    return _block(data, 0)


def _yaml_scalar(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted YAML scalar
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return ".nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _block(value: object, indent: int) -> str:
    """Block-style YAML, written by hand: no emitter between the fuzzer and the reader."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        lines = []
        for key, child in value.items():
            head = f"{pad}{json.dumps(str(key))}:"
            if isinstance(child, (dict, list)) and child:
                lines.append(head + "\n" + _block(child, indent + 2))
            else:
                lines.append(head + " " + _flow(child))
        return "\n".join(lines)
    if isinstance(value, list) and value:
        lines = []
        for child in value:
            if isinstance(child, (dict, list)) and child:
                lines.append(f"{pad}-\n" + _block(child, indent + 2))
            else:
                lines.append(f"{pad}- " + _flow(child))
        return "\n".join(lines)
    return pad + _flow(value)


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _yaml_scalar(value)


def _toml_text(data: object) -> str | None:
    try:
        return tomli_w.dumps(data)  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError):  # TOML has no null, needs a table at the top
        return None


def _schema_words() -> list[object]:
    """Every enum value, default and example the schemas name: values that fit somewhere."""
    found: list[object] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                if key in ("enum", "examples") and isinstance(child, list):
                    found.extend(child)
                elif key in ("default", "const"):
                    found.append(child)
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for path in sorted((ROOT / "schema").glob("graph.v*.json")):
        walk(json.loads(path.read_text()))
    return [json.loads(v) for v in sorted({json.dumps(v, sort_keys=True) for v in found})]


SCHEMA_WORDS: Final = _schema_words()
VALID: Final = [(n, d) for n, d in PARSED if not n.startswith("tests/graphs/invalid")]


def _leaves_by_type() -> dict[type, list[object]]:
    pool: dict[type, list[object]] = {}
    values = list(SCHEMA_WORDS) + [_at(d, p) for _, d in VALID for p in paths(d)]
    for value in values:
        if not isinstance(value, (dict, list)):
            pool.setdefault(type(value), []).append(value)
    return pool


LEAVES: Final = _leaves_by_type()


def gentle(rng: random.Random) -> Case:
    """One small change to a value of a valid graph, often still valid: the compiler and the
    node families see these, not only the schema."""
    name, data = rng.choice(VALID)
    data = json.loads(json.dumps(data))
    leaves = [p for p in paths(data) if len(p) > 2 and not isinstance(_at(data, p), (dict, list))]
    path = rng.choice(leaves)
    parent = _at(data, path[:-1])
    old = _at(data, path)
    kind = rng.randrange(5)
    if kind <= 2:
        value: object = rng.choice(LEAVES.get(type(old), [old]))  # the same type: maybe still valid
    elif kind == 3:
        value = rng.choice([0, 1, -1, 2, 7.0, 0.5, 1e300, -1e300, 2 ** 62, 10 ** 300, 1e-300, True, "", "0", "1s"])
    else:
        value = text_value(rng)
    parent[path[-1]] = value  # type: ignore[index]
    how = f"gentle set {path} = {str(value)[:60]!r} in {name}"
    if name.endswith(".toml") or rng.random() < 0.2:
        text = _toml_text(data)
        if text is not None:
            return Case("g.toml", text, how + ", as TOML")
    return Case("g.yaml", _yaml_text(rng, data), how + ", as YAML")


def structural(rng: random.Random) -> Case:
    name, data = rng.choice(PARSED)
    data = json.loads(json.dumps(data))
    how = mutate_data(rng, data, rng.choice([1, 1, 2, 3, 6]))
    if rng.random() < 0.3:
        text = _toml_text(data)
        if text is not None:
            return Case("g.toml", text, f"structural {how} of {name}, as TOML")
    return Case("g.yaml", _yaml_text(rng, data), f"structural {how} of {name}, as YAML")


# --- text mutations --------------------------------------------------------------------------------

YAML_SNIPPETS: Final = [
    "!!binary ", "!!python/object:os.system ", "!!python/name:builtins.eval ", "!!set ", "!!omap ",
    "!!timestamp ", "!!int ", "!!float ", "!!str ", "!!null ", "!!bool ", "!!map ", "!!seq ", "!custom ",
    "!<tag:yaml.org,2002:str> ", "!<!> ", "!!merge ", "&a ", "*a", "*undefined", "<<: *a", "? ", "- ", "{", "}", "[",
    "]", ",", ": ", "|", ">", "|-", ">+", "%YAML 1.1\n---\n", "%TAG ! tag:x,2000:\n---\n", "---\n", "...\n", "#",
    "@", "`", "\t", "\ufeff", "\u2028", "\x85", "\x00", "\r\n", "~", ".inf", ".nan", "0x", "0o7", "1_000",
    "2001-12-14t21:59:43.10-05:00", "yes", "on", "NULL", "=", "<<", "'", '"', "\\", "\\u", "&b [*b]",
]
TOML_SNIPPETS: Final = [
    "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "1979-05-27 07:32:00.999999", "inf", "-inf", "nan", "+nan",
    "-0.0", "9" * 5000, "0x" + "f" * 5000, "0o777", "0b101", "1e400", "1_000", "'''\nx\n'''", '"""\nx\n"""',
    '"\\U0010FFFF"', '"\\uD800"', '"\\x00"', "''", '""', "[[nodes]]\n", "[nodes]\n", "[nodes.a.b.c]\n",
    '"" = 1\n', "a.b.c = 1\n", "{", "}", "[", "]", ",", "=", "\r\n", "\x00", "\t", "# \x07\n", "true", "True",
    "{ a = 1,\n b = 2 }", "[1, 'a', {x = 1}]", "key = \n", "ノード = 1\n",
]


def _splice(rng: random.Random, text: str, snippets: list[str]) -> tuple[str, str]:
    if rng.random() < 0.5 and "\n" in text:
        starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        line_start = rng.choice(starts)
        end = text.find("\n", line_start)
        end = len(text) if end < 0 else end
        colon = text.find(":" if "=" not in text[line_start:end] else "=", line_start, end)
        at = colon + 2 if 0 <= colon < end - 1 else line_start
    else:
        at = rng.randint(0, len(text))
    snippet = rng.choice(snippets)
    drop = rng.choice([0, 0, 1, 5])
    return text[:at] + snippet + text[at + drop:], f"insert {snippet!r} at {at}, drop {drop}"


def text_edit(rng: random.Random) -> Case:
    name, text = rng.choice(SOURCES)
    snippets = TOML_SNIPPETS if name.endswith(".toml") else YAML_SNIPPETS
    how: list[str] = []
    for _ in range(rng.choice([1, 1, 2, 4])):
        choice = rng.randrange(6)
        if choice <= 2:
            text, done = _splice(rng, text, snippets)
        elif choice == 3:
            text, done = _splice(rng, text, UNICODE + KEYS)
        elif choice == 4:
            cut = rng.randint(0, len(text))
            text, done = text[:cut], f"truncate at {cut}"
        else:
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i] if rng.random() < 0.5 else " " + lines[i])
            text, done = "\n".join(lines), f"duplicate line {i + 1}"
        how.append(done)
    return Case(Path(name).name, text, f"text {how} of {name}")


# --- YAML anchors, aliases, tags -------------------------------------------------------------------


def alias_bomb(rng: random.Random) -> tuple[str, str]:
    fan, depth, style = rng.randint(2, 12), rng.randint(2, 12), rng.randrange(3)
    if (fan + 1) ** depth > 2_000 and fan ** depth < 10 ** 6:  # big but allowed: slow, and nothing new
        depth = 2 if rng.random() < 0.5 else 12
    lines = []
    for level in range(depth):
        if level == 0:
            body = "[" + ", ".join(["lol"] * fan) + "]"
        elif style == 0:
            body = "[" + ", ".join([f"*l{level - 1}"] * fan) + "]"
        elif style == 1:
            body = "{" + ", ".join(f"k{i}: *l{level - 1}" for i in range(fan)) + "}"
        else:  # merge keys of mappings
            body = "{<<: [" + ", ".join([f"*l{level - 1}"] * fan) + f"], m{level}: *l{level - 1}" + "}"
        if style == 2 and level == 0:
            body = "{" + ", ".join(f"k{i}: lol" for i in range(fan)) + "}"
        lines.append(f"  l{level}: &l{level} {body}")
    return "\n".join(lines), f"*l{depth - 1}"


def yaml_features(rng: random.Random) -> Case:
    name, text = rng.choice([s for s in YAML_SOURCES if "nodes:" in s[1]])
    kind = rng.randrange(5)
    if kind == 0:
        anchors, alias = alias_bomb(rng)
        place = rng.choice(["keep: ", "fields: ", "with: ", "from: ", "description: "])
        at = text.find(place)
        if at >= 0 and rng.random() < 0.7:
            end = text.find("\n", at)
            text = text[:at + len(place)] + alias + (text[end:] if end >= 0 else "")
        else:
            text += f"\nx-use: {alias}\n"
        return Case(Path(name).name, f"x-anchors:\n{anchors}\n{text}", f"alias bomb in {name}")
    if kind == 1:
        recursive = rng.choice(["&r [*r]", "&r {a: *r}", "&r {<<: *r}", "&r [1, [*r, *r]]", "&r {<<: [*r, *r]}"])
        return Case(Path(name).name, f"x-loop: {recursive}\n{text}", f"recursive alias {recursive} in {name}")
    if kind == 2:
        # An anchor on one value, an alias or a merge of it somewhere else.
        lines = text.split("\n")
        values = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
        if not values:
            return Case(Path(name).name, text, f"unchanged {name}")
        i, j = rng.choice(values), rng.choice(values)
        key, _, value = lines[i].partition(": ")
        lines[i] = f"{key}: &a {value}"
        jkey, _, _ = lines[j].partition(": ")
        lines[j] = f"{jkey}: " + rng.choice(["*a", "*b", "{<<: *a}", "{<<: [*a, *a], z: 1}", "[*a, *a]", "*a *a"])
        return Case(Path(name).name, "\n".join(lines), f"anchor line {i + 1}, alias line {j + 1} in {name}")
    if kind == 3:
        # A tag in front of a value.
        lines = text.split("\n")
        values = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
        i = rng.choice(values or [0])
        key, _, value = lines[i].partition(": ")
        tag = rng.choice([s for s in YAML_SNIPPETS if s.startswith("!")])
        lines[i] = f"{key}: {tag}{value}"
        return Case(Path(name).name, "\n".join(lines), f"tag {tag!r} on line {i + 1} of {name}")
    depth = rng.choice([30, 70, 200, 500, 1000, 3000])
    if rng.random() < 0.5:
        deep = "[" * depth + "1" + "]" * depth
    else:
        deep = "\n" + "".join(" " * (2 * d + 2) + f"k{d}:\n" for d in range(min(depth, 3000))) + " " * 6002 + "v"
    at = text.find("keep: ") if "keep: " in text else -1
    if at >= 0:
        end = text.find("\n", at)
        text = text[:at] + "keep: " + deep + text[end:]
    else:
        text += "\nx-deep: " + deep + "\n"
    return Case(Path(name).name, text, f"nesting {depth} deep in {name}")


# --- TOML ---------------------------------------------------------------------------------------


def toml_features(rng: random.Random) -> Case:
    name, text = rng.choice(TOML_SOURCES)
    kind = rng.randrange(4)
    lines = text.split("\n")
    assigns = [i for i, line in enumerate(lines) if " = " in line and not line.lstrip().startswith("#")]
    if kind == 0 and assigns:
        i = rng.choice(assigns)
        key, _, _ = lines[i].partition(" = ")
        value = rng.choice([s for s in TOML_SNIPPETS if "\n" not in s or s.startswith(("'''", '"""'))])
        lines[i] = f"{key} = {value}"
        return Case(Path(name).name, "\n".join(lines), f"value {value[:40]!r} on line {i + 1} of {name}")
    if kind == 1:
        depth = rng.choice([10, 70, 100, 400, 1000])
        deep = rng.choice(["[" * depth + "1" + "]" * depth, "{ a = " * depth + "1" + " }" * depth,
                           ".".join(["k"] * depth) + " = 1", "[" + ".".join(["t"] * depth) + "]\nx = 1"])
        return Case(Path(name).name, text + "\n" + deep + "\n", f"nesting {depth} deep in {name}")
    if kind == 2:
        line = rng.randrange(len(lines) + 1)
        lines.insert(line, rng.choice(TOML_SNIPPETS))
        return Case(Path(name).name, "\n".join(lines), f"line inserted at {line + 1} of {name}")
    sep = rng.choice(["\r\n", "\r", "\n\n", "\n\x00"])
    return Case(Path(name).name, sep.join(lines), f"line ends {sep!r} in {name}")


GENERATORS: Final[list[tuple[Callable[[random.Random], Case], int]]] = [
    (structural, 30), (gentle, 20), (text_edit, 25), (yaml_features, 15), (toml_features, 10),
]


def case(seed: int, shard: int, index: int) -> Case:
    rng = random.Random(f"{seed}:{shard}:{index}")
    generators = [g for g, _ in GENERATORS]
    weights = [w for _, w in GENERATORS]
    return rng.choices(generators, weights)[0](rng)


def run_seed() -> int:
    """The seed of this run: HEADRACE_FUZZ_SEED when set (to replay a failure); otherwise one
    drawn per run, the same in every pytest-xdist worker of the run."""
    given = os.environ.get(SEED_ENV)
    if given:
        return int(given)
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id:
        return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16)
    return random.SystemRandom().randrange(2 ** 32)


if __name__ == "__main__":  # python -m tests.fuzz_docs SEED SHARD INDEX: print one case
    import sys

    shown = case(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(f"# {shown.name}: {shown.how}\n{shown.text}")
