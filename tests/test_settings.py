"""Engine settings: defaults, engine.toml, HEADRACE_* variables, problems, `engine config show`."""

import json
import os
import re
from pathlib import Path

import pytest

from adapters.settings import (
    OTHER_VARIABLES,
    RULES,
    Settings,
    SettingsError,
    describe,
    load_settings,
)
from tests.conftest import ROOT

DEFAULTS = {
    "log_level": "info", "log_format": "text", "state_dir": "state", "durable_max_mb": 8192, "drain_timeout_s": 10.0,
    "state_encryption_key_file": None,
    "watch_debounce_ms": 200, "rescan_interval_s": 5.0, "control_address": "127.0.0.1:50051",
    "control_token": None, "control_tls_cert": None, "control_tls_key": None, "control_client_ca": None,
    "audit_log": None, "metrics_address": None, "metrics_public": False, "inspector_address": None,
    "opencl_device": "auto", "opencl_fallback": "none", "executor": "local", "ray_address": None,
    "ray_cpus_per_instance": 1.0, "trusted_keys": [],
}


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty current directory, so no stray engine.toml is picked up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def clean_env(monkeypatch):
    """os.environ without HEADRACE_* settings (the build's and CI's own variables may stay)."""
    for name in list(os.environ):
        if name.startswith("HEADRACE_") and name not in OTHER_VARIABLES - {"HEADRACE_CONFIG"}:
            monkeypatch.delenv(name)


def problems(config_file=None, env=None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file, {} if env is None else env)
    return str(caught.value).splitlines()


def test_defaults(here):
    settings = load_settings(env={})
    assert settings == Settings()
    assert describe(settings) == DEFAULTS
    assert settings.state_dir == Path("state")


def test_every_setting_has_a_rule():
    assert list(RULES) == list(Settings.model_fields)


def test_engine_toml_in_the_current_directory(here):
    (here / "engine.toml").write_text('log_level = "DEBUG"\ndrain_timeout_s = 2\nstate_dir = "/var/lib/headrace"\n')
    settings = load_settings(env={})
    want = ("debug", 2.0, Path("/var/lib/headrace"))
    assert (settings.log_level, settings.drain_timeout_s, settings.state_dir) == want
    assert settings.watch_debounce_ms == 200


def test_config_file_argument(here):
    path = here / "prod.toml"
    path.write_text("watch_debounce_ms = 0\nmetrics_address = \"0.0.0.0:9090\"\n")
    settings = load_settings(path, env={})
    assert (settings.watch_debounce_ms, settings.metrics_address) == (0, "0.0.0.0:9090")


def test_environment_overrides_the_file(here):
    (here / "engine.toml").write_text('log_format = "json"\ndrain_timeout_s = 2.5\n')
    settings = load_settings(env={"HEADRACE_DRAIN_TIMEOUT_S": "30", "HEADRACE_LOG_LEVEL": "Warning"})
    assert (settings.log_format, settings.drain_timeout_s, settings.log_level) == ("json", 30.0, "warning")


def test_which_file(here):
    (here / "engine.toml").write_text("drain_timeout_s = 1\n")
    (here / "named.toml").write_text("drain_timeout_s = 2\n")
    (here / "given.toml").write_text("drain_timeout_s = 3\n")
    assert load_settings(env={}).drain_timeout_s == 1
    assert load_settings(env={"HEADRACE_CONFIG": "named.toml"}).drain_timeout_s == 2
    assert load_settings(here / "given.toml", env={"HEADRACE_CONFIG": "named.toml"}).drain_timeout_s == 3


def test_missing_settings_file(here):
    assert problems(Path("nope.toml")) == [
        "nope.toml: no such settings file (named by --config); fix the path or create the file"]
    assert problems(env={"HEADRACE_CONFIG": "conf/engine.toml"}) == [
        "conf/engine.toml: no such settings file (named by HEADRACE_CONFIG); fix the path or create the file"]


def test_unknown_keys_in_the_file_name_their_line(here):
    (here / "engine.toml").write_text(
        '# engine settings\nlog_level = "info"\ndrain_timeout = 5\ncolour = "blue"\n\n[server]\nport = 1\n')
    known = ", ".join(Settings.model_fields)
    assert problems() == [
        "engine.toml:3: unknown setting 'drain_timeout'; did you mean 'drain_timeout_s'?",
        f"engine.toml:4: unknown setting 'colour'; remove it, or use one of {known}",
        f"engine.toml:6: unknown setting 'server'; remove it, or use one of {known}",
    ]


def test_unknown_variables(here):
    assert problems(env={"HEADRACE_DRAIN_TIMEOUT": "5", "HEADRACE_log_level": "info", "HEADRACE_COLOUR": "x",
                         "HEADRACE_LOG_LEVEL": "info", "PATH": "/bin", "headrace_colour": "x"}) == [
        "HEADRACE_COLOUR: unknown setting; unset it, or use one of "
        + ", ".join("HEADRACE_" + name.upper() for name in Settings.model_fields),
        "HEADRACE_DRAIN_TIMEOUT: unknown setting; did you mean HEADRACE_DRAIN_TIMEOUT_S?",
        "HEADRACE_log_level: unknown setting; did you mean HEADRACE_LOG_LEVEL?",
    ]


def test_variables_of_other_parts_are_allowed(here):
    (here / "other.toml").write_text("")
    env = {"HEADRACE_MYPYC": "0", "HEADRACE_EXPECT_MODE": "compiled", "HEADRACE_CONFIG": "other.toml"}
    assert load_settings(env=env) == Settings()


@pytest.mark.parametrize(("env", "message"), [
    ({"HEADRACE_DRAIN_TIMEOUT_S": "ten"}, "HEADRACE_DRAIN_TIMEOUT_S: must be a number above 0 (got 'ten')"),
    ({"HEADRACE_DRAIN_TIMEOUT_S": "-1"}, "HEADRACE_DRAIN_TIMEOUT_S: must be a number above 0 (got '-1')"),
    ({"HEADRACE_DRAIN_TIMEOUT_S": "0"}, "HEADRACE_DRAIN_TIMEOUT_S: must be a number above 0 (got '0')"),
    ({"HEADRACE_RESCAN_INTERVAL_S": "inf"}, "HEADRACE_RESCAN_INTERVAL_S: must be a number above 0 (got 'inf')"),
    ({"HEADRACE_WATCH_DEBOUNCE_MS": "-5"},
     "HEADRACE_WATCH_DEBOUNCE_MS: must be a whole number, 0 or more (got '-5')"),
    ({"HEADRACE_WATCH_DEBOUNCE_MS": "0.5"},
     "HEADRACE_WATCH_DEBOUNCE_MS: must be a whole number, 0 or more (got '0.5')"),
    ({"HEADRACE_LOG_FORMAT": "xml"}, "HEADRACE_LOG_FORMAT: must be text or json (got 'xml')"),
    ({"HEADRACE_LOG_LEVEL": "loud"}, "HEADRACE_LOG_LEVEL: must be debug, info, warning or error (got 'loud')"),
    ({"HEADRACE_STATE_DIR": ""}, "HEADRACE_STATE_DIR: must be a directory path (got '')"),
    ({"HEADRACE_CONTROL_ADDRESS": "50051"},
     "HEADRACE_CONTROL_ADDRESS: must be HOST:PORT, e.g. 127.0.0.1:50051 (got '50051')"),
    ({"HEADRACE_OPENCL_FALLBACK": "cpu"}, "HEADRACE_OPENCL_FALLBACK: must be none or numpy (got 'cpu')"),
    ({"HEADRACE_OPENCL_DEVICE": " "},
     "HEADRACE_OPENCL_DEVICE: must be auto, numpy, cpu, a device number or part of a device name, not empty (got ' ')"),
    ({"HEADRACE_METRICS_ADDRESS": "localhost:99999"},
     ("HEADRACE_METRICS_ADDRESS: must be HOST:PORT, e.g. 0.0.0.0:9090, or empty for no metrics endpoint "
     "(got 'localhost:99999')")),
])
def test_invalid_variables(here, env, message):
    assert problems(env=env) == [message]


def test_invalid_file_values_name_their_line(here):
    (here / "engine.toml").write_text(
        'log_format = "yaml"\ndrain_timeout_s = "ten"\nwatch_debounce_ms = true\nrescan_interval_s = -1\n'
        'control_token = 1234\n')
    assert problems() == [
        "engine.toml:1: log_format: must be text or json (got 'yaml')",
        "engine.toml:2: drain_timeout_s: must be a number above 0 (got 'ten')",
        "engine.toml:3: watch_debounce_ms: must be a whole number, 0 or more (got true)",
        "engine.toml:4: rescan_interval_s: must be a number above 0 (got -1)",
        "engine.toml:5: control_token: must be a string",  # a secret's value is never shown
    ]


def test_every_problem_at_once(here):
    (here / "engine.toml").write_text("drain_timeout_s = -1\nbogus = 1\n")
    assert problems(env={"HEADRACE_LOG_FORMAT": "xml", "HEADRACE_BOGUS": "1"}) == [
        "engine.toml:1: drain_timeout_s: must be a number above 0 (got -1)",
        "engine.toml:2: unknown setting 'bogus'; remove it, or use one of " + ", ".join(Settings.model_fields),
        "HEADRACE_BOGUS: unknown setting; unset it, or use one of "
        + ", ".join("HEADRACE_" + name.upper() for name in Settings.model_fields),
        "HEADRACE_LOG_FORMAT: must be text or json (got 'xml')",
    ]


def test_an_invalid_file_value_is_reported_even_when_a_variable_overrides_it(here):
    (here / "engine.toml").write_text("drain_timeout_s = 0\n")
    assert problems(env={"HEADRACE_DRAIN_TIMEOUT_S": "5"}) == [
        "engine.toml:1: drain_timeout_s: must be a number above 0 (got 0)"]


@pytest.mark.parametrize(("text", "message"), [
    ('log_level = "info"\ndrain_timeout_s = \n', "engine.toml:2:19: invalid TOML: invalid value"),
    ('log_level = "info\n', "engine.toml:1:18: invalid TOML: illegal character '\\n'"),
    ("log_level\n", "engine.toml:1:10: invalid TOML: expected '=' after a key in a key/value pair"),
    ('log_level = "a"\nlog_level = "b"\n', "engine.toml:2:16: invalid TOML: cannot overwrite a value"),
])
def test_toml_syntax_errors_give_line_and_column(here, text, message):
    (here / "engine.toml").write_text(text)
    assert problems() == [message]


def test_opencl_settings(here):
    (here / "engine.toml").write_text('opencl_device = 1\nopencl_fallback = "numpy"\n')
    settings = load_settings(env={})
    assert (settings.opencl_device, settings.opencl_fallback) == ("1", "numpy")  # a TOML number names a device
    settings = load_settings(env={"HEADRACE_OPENCL_DEVICE": "  GeForce RTX ", "HEADRACE_OPENCL_FALLBACK": "none"})
    assert (settings.opencl_device, settings.opencl_fallback) == ("GeForce RTX", "none")


def test_invalid_opencl_settings_in_the_file(here):
    (here / "engine.toml").write_text('opencl_device = ""\nopencl_fallback = "cpu"\n')
    assert problems() == [
        "engine.toml:1: opencl_device: must be auto, numpy, cpu, a device number or part of a device name, not empty "
        "(got '')",
        "engine.toml:2: opencl_fallback: must be none or numpy (got 'cpu')",
    ]


def test_not_utf8(here):
    (here / "engine.toml").write_bytes(b'log_level = "\xff"\n')
    assert problems() == ["engine.toml: not UTF-8 text (byte 14); save the file as UTF-8"]


def test_empty_optional_values_mean_unset(here):
    (here / "engine.toml").write_text('control_token = "t"\nmetrics_address = "127.0.0.1:9090"\n')
    settings = load_settings(env={"HEADRACE_CONTROL_TOKEN": "", "HEADRACE_METRICS_ADDRESS": ""})
    assert (settings.control_token, settings.metrics_address) == (None, None)


def test_secrets_are_masked(here):
    settings = load_settings(env={"HEADRACE_CONTROL_TOKEN": "s3cret", "HEADRACE_METRICS_ADDRESS": "[::]:9090"})
    assert settings.control_token is not None and settings.control_token.get_secret_value() == "s3cret"
    assert describe(settings) == {**DEFAULTS, "control_token": "****", "metrics_address": "[::]:9090"}
    assert "s3cret" not in repr(settings) and "s3cret" not in json.dumps(describe(settings))


TEXT_DEFAULTS = """\
log_level = "info"
log_format = "text"
state_dir = "state"
durable_max_mb = 8192
# state_encryption_key_file is not set
drain_timeout_s = 10.0
watch_debounce_ms = 200
rescan_interval_s = 5.0
control_address = "127.0.0.1:50051"
# control_token is not set
# control_tls_cert is not set
# control_tls_key is not set
# control_client_ca is not set
# audit_log is not set
# metrics_address is not set
metrics_public = false
# inspector_address is not set
opencl_device = "auto"
opencl_fallback = "none"
executor = "local"
# ray_address is not set
ray_cpus_per_instance = 1.0
trusted_keys = []
"""


def test_config_show_text(cli, here, clean_env):
    assert cli("config", "show") == (0, TEXT_DEFAULTS, "")


def test_config_show_masks_the_token(cli, here, clean_env, monkeypatch):
    (here / "prod.toml").write_text('log_level = "debug"\ncontrol_token = "s3cret"\n')
    monkeypatch.setenv("HEADRACE_DRAIN_TIMEOUT_S", "2.5")
    code, out, err = cli("config", "show", "--config", "prod.toml")
    assert (code, err) == (0, "")
    assert out == (TEXT_DEFAULTS.replace('"info"', '"debug"').replace("10.0", "2.5")
                   .replace("# control_token is not set", 'control_token = "****"'))
    code, out, err = cli("config", "show", "--config", "prod.toml", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {**DEFAULTS, "log_level": "debug", "drain_timeout_s": 2.5, "control_token": "****"}
    assert "s3cret" not in out


def test_config_show_errors_exit_2(cli, here, clean_env, monkeypatch):
    (here / "engine.toml").write_text("drain_timeout_s = -1\n")
    monkeypatch.setenv("HEADRACE_LOG_FORMAT", "xml")
    assert cli("config", "show") == (2, "", (
        "engine: error: engine.toml:1: drain_timeout_s: must be a number above 0 (got -1)\n"
        "engine: error: HEADRACE_LOG_FORMAT: must be text or json (got 'xml')\n"))


def test_config_needs_an_action(cli):
    code, _, err = cli("config")
    assert code == 2 and "the following arguments are required: ACTION" in err


def test_documented_example_file_and_output(cli, here, clean_env):
    """docs/settings.md: its engine.toml example is valid and `engine config show` prints what it shows."""
    doc = (ROOT / "docs" / "settings.md").read_text()
    example = re.search(r"```toml\n(.*?)```", doc, re.DOTALL).group(1)
    shown = re.search(r"```console\n\$ engine config show\n(.*?)```", doc, re.DOTALL).group(1)
    (here / "engine.toml").write_text(example)
    assert cli("config", "show") == (0, shown, "")


def test_only_the_command_line_loads_settings():
    """Settings are read once, by the command that runs, and passed down (GpuConfig into the
    GPU family, the state directory into durable storage): a module below the command line
    that read them itself would ignore `--config`."""
    readers = sorted(str(path.relative_to(ROOT)) for package in ("engine", "loader", "migrations", "adapters")
                     for path in (ROOT / package).rglob("*.py")
                     if "load_settings(" in path.read_text() and path.parent != ROOT / "adapters" / "cli")
    assert readers == ["adapters/settings.py"]
