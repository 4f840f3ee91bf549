"""Secret parameter values, and the text people see instead of them.

A node type lists its secret parameters in `NodeSpec.secrets`. Wherever a parameter value
can be shown (`engine plan`, the control plane, logs, failure messages, the stats), this
module decides what is shown instead:

- a password or token is `****` whole; a mapping (`headers`) has every value `****`;
- a URL or a libpq DSN keeps its shape and loses only its password:
  `postgresql://user:****@host:5432/db`, `host=db password=****`, `...?password=****`.

Two nets catch what a connector might print by mistake. `mask_value` rewrites any URL
userinfo password and any `password=` pair in a text, whatever it belongs to. `secret_texts`
lists the literal secret strings of one node (a whole password, a URL's password part), so
`mask_known` can take them out of a failure message or a log line of that node even where
no URL is around them.

A graph file marks more secrets: any `with:` value taken from `${secret:VAR}` or from a
variable its `secret_env` lists. The plan names every secret value of a node by a JSON
Pointer into its `with:` (`NodePlan.secrets`) with a salted slow hash of it (`secret_digest`),
and prints `****` there (`masked_at`): rotating a secret changes the plan's hash, and the
hash printed beside it gives nothing away cheaply.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from engine.plan import GraphPlan, NodePlan, SecretParam
    from engine.spec import NodeSpec, SpecRegistry

MASK: Final = "****"
# PBKDF2 rounds for a secret's hash in the plan: a printed plan (or its content hash) must not
# let anyone test guesses of a short password at sha256 speed. About 20 ms a secret, once a load.
SECRET_HASH_ROUNDS: Final = 100_000
SECRET_HASH_PREFIX: Final = "pbkdf2-sha256:"
# A literal shorter than this is not taken out of texts: a 2-letter secret would blank every
# word holding those letters, and the pattern masks still cover URLs and `password=` pairs.
SHORTEST_KNOWN: Final = 4

# `scheme://user:password@host`: the password is everything between the first ':' of the
# userinfo and the last '@' before the path (urllib splits it the same way).
_URL_PASSWORD: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)([^/?#\s]*)(@)")
# `?password=x&...` in a URL's query (libpq and redis URLs take one).
_QUERY_PASSWORD: Final = re.compile(r"([?&](?:ssl)?password=)([^&#\s]*)", re.IGNORECASE)
# libpq `key=value` pairs: `password=x`, `password = 'x y'` (quoted with backslash escapes).
_PAIR_PASSWORD: Final = re.compile(r"((?:^|\s)(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']\S*)",
                                   re.IGNORECASE)
# A value shaped like a connection string: only its password part is secret.
_DSN: Final = re.compile(r"://|(?:^|\s)(?:host|hostaddr|dbname|user|port|password|service)\s*=", re.IGNORECASE)


def mask_value(text: str) -> str:
    """`text` with every URL userinfo password and every `password=` value as `****`."""
    if "://" in text:
        text = _URL_PASSWORD.sub(_keep_ends, text)
    if "password" in text.lower():
        text = _QUERY_PASSWORD.sub(_keep_key, text)
        text = _PAIR_PASSWORD.sub(_keep_key, text)
    return text


def _keep_ends(match: "re.Match[str]") -> str:
    return match.group(1) + MASK + match.group(3)


def _keep_key(match: "re.Match[str]") -> str:
    return match.group(1) + MASK


def is_connection_string(text: str) -> bool:
    return _DSN.search(text) is not None


def masked_secret(value: object) -> object:
    """What is shown of one secret parameter's value."""
    if isinstance(value, str):
        return mask_value(value) if is_connection_string(value) else MASK
    if isinstance(value, dict):
        return {str(key): MASK for key in value}
    if isinstance(value, list):
        return [masked_secret(item) for item in value]
    if value is None:
        return None
    return MASK


def masked_params(spec: "NodeSpec | None", params: dict[str, object]) -> dict[str, object]:
    """A copy of a node's `with:` with its secret parameters masked (an unknown type: every
    value passes `mask_value`, since nothing says which are secret)."""
    if spec is None:
        return {key: _masked_anything(value) for key, value in params.items()}
    if not spec.secrets:
        return dict(params)
    return {key: masked_secret(value) if key in spec.secrets else value for key, value in params.items()}


def _masked_anything(value: object) -> object:
    if isinstance(value, str):
        return mask_value(value)
    if isinstance(value, dict):
        return {str(k): _masked_anything(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_anything(v) for v in value]
    return value


def secret_texts(spec: "NodeSpec | None", params: dict[str, object]) -> tuple[str, ...]:
    """The literal secret strings of one node, longest first (so a longer secret is masked
    before a shorter one inside it): each secret value whole, or, for a connection string,
    its password."""
    if spec is None or not spec.secrets:
        return ()
    found: set[str] = set()
    for key in spec.secrets:
        if key in params:
            _collect(params[key], found)
    return tuple(sorted((t for t in found if len(t) >= SHORTEST_KNOWN), key=lambda t: (-len(t), t)))


def _collect(value: object, found: set[str]) -> None:
    if isinstance(value, str):
        if not is_connection_string(value):
            found.add(value)
            return
        for match in _URL_PASSWORD.finditer(value):
            found.add(match.group(2))
        for match in _QUERY_PASSWORD.finditer(value):
            found.add(match.group(2))
        for match in _PAIR_PASSWORD.finditer(value):
            quoted = match.group(2)
            found.add(quoted)
            if quoted.startswith("'") and len(quoted) >= 2:
                found.add(quoted[1:-1])
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found.add(str(value))


def mask_known(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each of `secrets` (as `secret_texts` lists them) and any URL or `password=`
    password as `****`: the last net under a failure message or a log line."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return mask_value(text)


def node_secret_texts(spec: "NodeSpec | None", node: "NodePlan") -> tuple[str, ...]:
    """`secret_texts` of a planned node, with the values its graph file marks secret: each
    such value whole and each variable's text in it (`Bearer ${secret:T}` gives both)."""
    params = node.params()
    found = set(secret_texts(spec, params))
    for secret in node.secrets:
        found.update(secret.texts)
        value = value_at(params, secret.pointer)
        if not secret.whole:  # a parameter its type marks secret: `secret_texts` has it
            continue
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            found.add(str(value))
        else:
            _collect(value, found)
    return tuple(sorted((t for t in found if len(t) >= SHORTEST_KNOWN), key=lambda t: (-len(t), t)))


def plan_secret_texts(plan: "GraphPlan", registry: "SpecRegistry") -> tuple[str, ...]:
    """Every node's secret strings, longest first: for a message that may name any node."""
    found: set[str] = set()
    for node in plan.nodes:
        found.update(node_secret_texts(registry.get(node.type), node))
    return tuple(sorted(found, key=lambda t: (-len(t), t)))


def pointer_of(path: Sequence[str | int]) -> str:
    """A JSON Pointer (RFC 6901) to `path` inside a node's `with:`: `/headers/Authorization`."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def pointer_parts(pointer: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]


def _step(container: object, part: str) -> tuple[bool, object]:
    """(found, the value under `part`) of a mapping or a list."""
    if isinstance(container, dict):
        return (True, container[part]) if part in container else (False, None)
    if isinstance(container, list) and part.isdigit() and int(part) < len(container):
        return True, container[int(part)]
    return False, None


def value_at(params: object, pointer: str) -> object:
    """The value `pointer` names, or None where it names nothing."""
    value = params
    for part in pointer_parts(pointer):
        found, value = _step(value, part)
        if not found:
            return None
    return value


def resolvable_pointer(params: object, path: Sequence[str | int]) -> str:
    """The pointer to `path`, or to its deepest prefix present in `params` (masking more
    rather than less when the checked parameters differ from what was written); "" for none."""
    value = params
    reached: list[str | int] = []
    for part in path:
        found, value = _step(value, str(part))
        if not found:
            break
        reached.append(part)
    return pointer_of(reached)


def secret_digest(graph: str, node: str, pointer: str, value: object) -> str:
    """A salted slow hash of one secret value: equal values give equal digests in every
    process (plans compare across `engine plan` and `engine serve`), and the salt names the
    place, so one table of guesses does not serve every graph."""
    salt = f"headrace-secret\0{graph}\0{node}\0{pointer}".encode()
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return SECRET_HASH_PREFIX + hashlib.pbkdf2_hmac("sha256", text, salt, SECRET_HASH_ROUNDS).hex()


def masked_at(params: dict[str, object], secrets: "Sequence[SecretParam]") -> dict[str, object]:
    """`params` (changed in place, and returned) with each secret's value shown as it may be:
    `****` whole, or a parameter its node type marks secret in the shape `masked_secret`
    keeps. Outer pointers first, so an inner value from a secret variable ends up `****`."""
    for secret in sorted(secrets, key=lambda s: (s.pointer.count("/"), s.pointer)):
        parts = pointer_parts(secret.pointer)
        if not parts:
            continue
        found, container = _step(params, parts[0]) if len(parts) > 1 else (True, params)
        for part in parts[1:-1]:
            if found:
                found, container = _step(container, part)
        last = parts[-1]
        if not found:
            continue
        if isinstance(container, dict) and last in container:
            container[last] = MASK if secret.whole else masked_secret(container[last])
        elif isinstance(container, list) and last.isdigit() and int(last) < len(container):
            index = int(last)
            container[index] = MASK if secret.whole else masked_secret(container[index])
    return params


def printable_plan(plan: "GraphPlan", registry: "SpecRegistry") -> dict[str, object]:
    """`plan.to_dict()` (which masks the secrets the plan names) with every parameter its
    node type marks secret masked too, for plans built without them. `hash` stays the running
    plan's (what `engine ctl status` shows and `apply --expect` compares)."""
    out = plan.to_dict()
    nodes = out["nodes"]
    assert isinstance(nodes, dict)
    for node in plan.nodes:
        shown = nodes[node.name]
        assert isinstance(shown, dict)
        params = shown["with"]
        assert isinstance(params, dict)
        shown["with"] = masked_params(registry.get(node.type), params)
    return out
