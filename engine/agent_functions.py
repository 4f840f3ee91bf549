"""parse_user_agent(): browser, operating system and device from a User-Agent header.

The rules are uap-core's, kept current by the `ua-parser` and `ua-parser-builtins` packages
(new browsers appear every month; hand-written rules would rot). With google-re2 installed,
which the engine requires, ua-parser matches with RE2, so a crafted header cannot make a
rule backtrack; its own cache of recent headers is bounded. The package is imported when a
graph that calls parse_user_agent is checked (engine.literal_checks), or else on the first
call: a graph that never parses a User-Agent does not pay its load time.
"""

from collections.abc import Callable
from typing import Any, Final

from engine.functions import ExprValueError, type_name

MAX_USER_AGENT_LENGTH: Final = 4096  # real headers are under 1,000 characters
_PARSE: Final[list[Callable[[str], Any]]] = []


def load_rules() -> Callable[[str], Any]:
    """The parser, its rules loaded. The loader calls this when it checks a graph that uses
    parse_user_agent, so the load (about a quarter of a second, imports included) happens
    before the first event rather than during it."""
    if not _PARSE:
        import ua_parser

        ua_parser.parse("")  # the first call builds the RE2 matchers
        _PARSE.append(ua_parser.parse)
    return _PARSE[0]


def _version(part: Any) -> dict[str, object]:
    return {"family": part.family, "major": part.major, "minor": part.minor, "patch": part.patch}


def parse_user_agent(text: object) -> dict[str, object]:
    """{browser: {family, major, minor, patch}, os: {family, major, minor, patch},
    device: {family, brand, model}}; what is not recognised is family 'Other'."""
    if not isinstance(text, str):
        raise TypeError(f"parse_user_agent() needs text, not {type_name(text)}")
    if len(text) > MAX_USER_AGENT_LENGTH:
        raise ExprValueError(f"parse_user_agent() text is longer than {MAX_USER_AGENT_LENGTH:,} characters")
    found = load_rules()(text).with_defaults()
    device = found.device
    return {
        "browser": _version(found.user_agent), "os": _version(found.os),
        "device": {"family": device.family, "brand": device.brand, "model": device.model},
    }


def agent_functions() -> dict[str, Callable[..., object]]:
    return {"parse_user_agent": parse_user_agent}
