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
"""

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from engine.plan import GraphPlan
    from engine.spec import NodeSpec, SpecRegistry

MASK: Final = "****"
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


def plan_secret_texts(plan: "GraphPlan", registry: "SpecRegistry") -> tuple[str, ...]:
    """Every node's secret strings, longest first: for a message that may name any node."""
    found: set[str] = set()
    for node in plan.nodes:
        found.update(secret_texts(registry.get(node.type), node.params()))
    return tuple(sorted(found, key=lambda t: (-len(t), t)))


def printable_plan(plan: "GraphPlan", registry: "SpecRegistry") -> dict[str, object]:
    """`plan.to_dict()` with every secret parameter masked. `hash` stays the running plan's
    (what `engine ctl status` shows and `apply --expect` compares), so a masked plan is for
    reading: it cannot be rebuilt into the same plan."""
    out = plan.to_dict()
    nodes = out["nodes"]
    assert isinstance(nodes, dict)
    for node in plan.nodes:
        shown = nodes[node.name]
        assert isinstance(shown, dict)
        shown["with"] = masked_params(registry.get(node.type), node.params())
    return out
