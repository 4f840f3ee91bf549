"""Engine settings: defaults, overridden by `engine.toml`, overridden by `HEADRACE_*` variables.

`load_settings()` is the one way settings are read. It reads the file and the environment
itself, not through pydantic-settings' own sources, so that every problem can name where it
came from (`engine.toml:4: ...`, `HEADRACE_DRAIN_TIMEOUT_S: ...`) and every problem is
reported at once. The `Settings` model holds the types, defaults and rules.
"""

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, SecretStr, StringConstraints, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from adapters.gpu.config import DEFAULT_DEVICE, DEFAULT_FALLBACK

ENV_PREFIX: Final = "HEADRACE_"
CONFIG_FILE_NAME: Final = "engine.toml"
CONFIG_VARIABLE: Final = "HEADRACE_CONFIG"
MASK: Final = "****"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")

# HEADRACE_* variables that are not settings but belong to other parts, so load_settings
# lets them be: the build (setup.py), the test suite's build check (tests/test_build.py,
# set by .ci/run), and the settings file's own location.
OTHER_VARIABLES: Final = frozenset({"HEADRACE_MYPYC", "HEADRACE_EXPECT_MODE", CONFIG_VARIABLE})

_HOST_PORT: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})")


class Settings(BaseSettings):
    """The engine's settings. Build them with `load_settings()`; `Settings(**values)` is the
    defaults plus `values` only (no file, no environment), for tests and embedding."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    log_level: str = "info"
    log_format: str = "text"
    state_dir: Path = Path("state")
    # The most disk the durable edges may use together; at the limit they apply their policy.
    durable_max_mb: Annotated[int, Field(ge=1)] = 8192
    # A file holding a 256-bit key (base64): durable edges then seal what they store (AES-GCM).
    state_encryption_key_file: Path | None = None
    drain_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    watch_debounce_ms: Annotated[int, Field(ge=0)] = 200
    rescan_interval_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    control_address: str = "127.0.0.1:50051"
    control_token: SecretStr | None = None
    # TLS for the control plane: certificate and key (PEM files); a client CA makes it mutual.
    control_tls_cert: Path | None = None
    control_tls_key: Path | None = None
    control_client_ca: Path | None = None
    audit_log: Path | None = None  # JSON lines of every mutating control call, hash-chained
    metrics_address: str | None = None
    # With a control_token, scrapes must send it unless this is set; without one, a
    # non-loopback metrics address is refused unless this is set.
    metrics_public: bool = False
    # The live web inspector's HOST:PORT (docs/inspector.md); its token rule is metrics'.
    inspector_address: str | None = None
    # GPU segments run on: auto (the first GPU, else NumPy), numpy, cpu, a device number or part
    # of a device name; fallback numpy: a missing device or one without float64 gives way to NumPy.
    opencl_device: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = DEFAULT_DEVICE
    opencl_fallback: Literal["none", "numpy"] = DEFAULT_FALLBACK
    # Where partitioned stages run (docs/scale-out.md): in this process, or on Ray actors; with
    # ray, the cluster (unset: a local Ray on this machine's cores; `auto`, `ray://HOST:PORT`)
    # and the CPUs each instance reserves there.
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_cpus_per_instance: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    # Public keys (PEM files) whose signatures `engine serve` accepts (docs/bundles.md); empty:
    # no signature is needed.
    trusted_keys: list[Path] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # load_settings() reads the file and the environment

    @field_validator("drain_timeout_s", "watch_debounce_ms", "rescan_interval_s", "durable_max_mb", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic would take `true` as 1
            raise ValueError("a boolean is not a number")  # a ValueError, not TypeError: pydantic reports those
        return value

    @field_validator("opencl_device", mode="before")
    @classmethod
    def _device_number(cls, value: Any) -> Any:
        # `opencl_device = 1` in engine.toml is device 1, as HEADRACE_OPENCL_DEVICE=1 is
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("trusted_keys", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        # HEADRACE_TRUSTED_KEYS: a JSON list, or paths separated by commas ("" is none)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)  # a JSONDecodeError is a ValueError: reported with the rule
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError("unknown log level")
        return value.lower()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in LOG_FORMATS:
            raise ValueError("unknown log format")
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value == "":
            raise ValueError("empty path")
        return value

    @field_validator("control_token", "metrics_address", "inspector_address", "control_tls_cert",
                     "control_tls_key", "control_client_ca", "audit_log", "state_encryption_key_file", "ray_address",
                     mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("control_address", "metrics_address", "inspector_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        match = _HOST_PORT.fullmatch(value) if value is not None else None
        if value is not None and (match is None or int(match.group(1)) > 65535):
            raise ValueError("not HOST:PORT")
        return value


# What each setting must be, as the fix in a problem's message: one rule per field,
# whatever pydantic's own error was.
RULES: Final[Mapping[str, str]] = {
    "log_level": "must be " + ", ".join(LOG_LEVELS[:-1]) + " or " + LOG_LEVELS[-1],
    "log_format": "must be " + " or ".join(LOG_FORMATS),
    "state_dir": "must be a directory path",
    "durable_max_mb": "must be a whole number of megabytes, 1 or more",
    "state_encryption_key_file": "must be the path of a file holding a 256-bit key in base64",
    "drain_timeout_s": "must be a number above 0",
    "watch_debounce_ms": "must be a whole number, 0 or more",
    "rescan_interval_s": "must be a number above 0",
    "control_address": "must be HOST:PORT, e.g. 127.0.0.1:50051",
    "control_token": "must be a string",
    "control_tls_cert": "must be the path of a PEM certificate file",
    "control_tls_key": "must be the path of a PEM private key file",
    "control_client_ca": "must be the path of a PEM CA certificate file (clients must present a certificate it signed)",
    "audit_log": "must be a file path",
    "metrics_address": "must be HOST:PORT, e.g. 0.0.0.0:9090, or empty for no metrics endpoint",
    "metrics_public": "must be true or false",
    "inspector_address": "must be HOST:PORT, e.g. 127.0.0.1:9465, or empty for no inspector",
    "opencl_device": "must be auto, numpy, cpu, a device number or part of a device name, not empty",
    "opencl_fallback": "must be none or numpy",
    "executor": "must be local or ray",
    "ray_address": "must be auto, ray://HOST:PORT or HOST:PORT of a Ray head node, or empty for a local Ray",
    "ray_cpus_per_instance": "must be a number above 0 (fractions share a core)",
    "trusted_keys": "must be a list of public key files (PEM); in the environment, paths separated by commas "
                    "or a JSON list",
}
SECRET_FIELDS: Final = frozenset({"control_token"})


class SettingsError(Exception):
    """Settings that cannot be used. The message has one line per problem, each naming its
    source (`engine.toml:LINE: ...` or `HEADRACE_NAME: ...`) and the fix."""


def env_name(field: str) -> str:
    """The variable that sets `field`: `drain_timeout_s` -> `HEADRACE_DRAIN_TIMEOUT_S`."""
    return ENV_PREFIX + field.upper()


def load_settings(config_file: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """The effective settings: defaults, then the settings file, then `HEADRACE_<FIELD>` variables.

    The file is `config_file` if given, else the file named by `HEADRACE_CONFIG` if set, else
    `engine.toml` in the current directory if it exists; top-level keys are the field names.
    Unknown keys in the file and unknown `HEADRACE_*` variables (other than OTHER_VARIABLES)
    are errors. Raises SettingsError with every problem, one line each."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, Any] = {}
    path, path_source = _config_path(config_file, env)
    if path is not None:
        file_values, file_problems = _read_file(path, path_source)
        problems += file_problems
        values.update(file_values)
    env_values, env_problems = _read_env(env)
    problems += env_problems
    values.update(env_values)
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**values)


def describe(settings: Settings) -> dict[str, object]:
    """Effective settings as plain JSON-able values, secrets masked as "****" (unset secrets: null)."""
    described: dict[str, object] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = MASK
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list):
            value = [str(item) for item in value]
        described[name] = value
    return described


def _config_path(config_file: Path | None, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """The settings file to read (None: there is none) and, for a missing one, who named it."""
    if config_file is not None:
        return config_file, "--config"
    named = env.get(CONFIG_VARIABLE, "")
    if named:
        return Path(named), CONFIG_VARIABLE
    default = Path(CONFIG_FILE_NAME)
    return (default, "the current directory") if default.is_file() else (None, "")


def _read_file(path: Path, named_by: str) -> tuple[dict[str, Any], list[str]]:
    """The file's values (only those that are valid) and its problems."""
    where = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}, [f"{where}: no such settings file (named by {named_by}); fix the path or create the file"]
    except UnicodeDecodeError as exc:
        return {}, [f"{where}: not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8"]
    except OSError as exc:
        return {}, [f"{where}: cannot read the settings file: {exc.strerror or exc}"]
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return {}, [_syntax_problem(where, text, exc)]
    located: list[tuple[int, str]] = []
    known: dict[str, Any] = {}
    for key, value in document.items():
        line = _key_line(text, key)
        place = f"{where}:{line}" if line else where
        if key in Settings.model_fields:
            known[key] = value
            continue
        close = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
        fix = f"did you mean '{close[0]}'?" if close else "remove it, or use one of " + ", ".join(Settings.model_fields)
        located.append((line or 0, f"{place}: unknown setting '{key}'; {fix}"))
    valid, invalid = _validate(known)
    for name in invalid:
        line = _key_line(text, name)
        place = f"{where}:{line}" if line else where
        located.append((line or 0, f"{place}: {name}: {RULES[name]}{_got(name, known[name])}"))
    return valid, [message for _, message in sorted(located, key=lambda item: item[0])]


def _read_env(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The values `HEADRACE_*` variables set (only those that are valid) and their problems."""
    by_variable = {env_name(name): name for name in Settings.model_fields}
    raw: dict[str, str] = {}
    problems: dict[str, str] = {}
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable in OTHER_VARIABLES:
            continue
        if variable in by_variable:
            raw[by_variable[variable]] = env[variable]
            continue
        close = difflib.get_close_matches(variable[len(ENV_PREFIX):].lower(), list(Settings.model_fields), n=1)
        fix = f"did you mean {env_name(close[0])}?" if close else "unset it, or use one of " + ", ".join(by_variable)
        problems[variable] = f"{variable}: unknown setting; {fix}"
    valid, invalid = _validate(raw)
    for name in invalid:
        problems[env_name(name)] = f"{env_name(name)}: {RULES[name]}{_got(name, raw[name])}"
    return valid, [problems[variable] for variable in sorted(problems)]


def _validate(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`values` split into the valid ones and the names of the invalid ones (in field order).
    Each field is checked on its own: no rule looks at two fields."""
    try:
        Settings(**values)
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        invalid = [name for name in Settings.model_fields if name in bad]
        return {k: v for k, v in values.items() if k not in bad}, invalid
    return dict(values), []


def _got(name: str, value: object) -> str:
    """` (got 'ten')`, never a secret's value."""
    if name in SECRET_FIELDS:
        return ""
    if isinstance(value, bool):
        shown = "true" if value else "false"
    else:
        shown = repr(value)
    return f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


_TOML_PLACE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _syntax_problem(where: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """`engine.toml:3:17: invalid TOML: ...` from tomllib's `... (at line 3, column 17)`."""
    message = str(exc)
    match = _TOML_PLACE.search(message)
    if match is not None:
        line, column = int(match.group(1)), int(match.group(2))
        message = message[: match.start()]
    else:  # "(at end of document)"
        message = message.replace(" (at end of document)", "")
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    return f"{where}:{line}:{column}: invalid TOML: {message[:1].lower()}{message[1:]}"


def _key_line(text: str, key: str) -> int | None:
    """The line (1-based) where top-level `key` is set: `key = ...` or `key.sub = ...` before
    the first table, or a `[key]` / `[key.sub]` table header."""
    name = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    assignment = re.compile(rf"\s*{name}\s*[=.]")
    header = re.compile(rf"\s*\[\[?\s*{name}\s*[.\]]")
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        if header.match(line) or (not in_table and assignment.match(line)):
            return number
        in_table = in_table or line.lstrip().startswith("[")
    return None
