"""`engine bundle`: keys, signing a graph directory, verifying it, signing one file."""

import json
import stat
from pathlib import Path

import pytest

from adapters.trust.canonical import canonical_document

ORDERS = """\
# Orders, priced in cents.
version: 2
name: orders
nodes:
  orders:
    type: generate
    with: {count: "${ORDERS:-10}", fields: {id: i, amount: float(i)}}
  priced: {type: map, from: orders, with: {set: {cents: "int(amount * 100)"}}}
  out: {type: stdout, from: priced}
"""
ALERTS = """\
version: 2
nodes:
  ticks: {type: generate, with: {count: 3, fields: {n: i}}}
  out: {type: stdout, from: ticks}
"""


@pytest.fixture
def signed(cli, tmp_path):  # type: ignore[no-untyped-def]
    """tmp_path/graphs with two graphs (and a test file) signed by tmp_path/ci; the key pair."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "orders.yaml").write_text(ORDERS)
    (graphs / "alerts.yaml").write_text(ALERTS)
    (graphs / "orders.test.yaml").write_text("not signed: tests are not graphs\n")
    code, out, err = cli("bundle", "keygen", "-o", str(tmp_path / "ci"))
    assert (code, err) == (0, "") and out.startswith(f"wrote {tmp_path / 'ci'} (private, keep it secret)")
    code, out, err = cli("bundle", "sign", str(graphs), "--key", str(tmp_path / "ci"))
    assert (code, err) == (0, "")
    assert out.startswith(f"signed 2 graph files in {graphs} with key ")
    return graphs, tmp_path / "ci", tmp_path / "ci.pub"


def verify(cli, graphs: Path, *keys: Path) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    return cli("bundle", "verify", str(graphs), *[a for k in keys for a in ("--pubkey", str(k))])


def test_keygen_writes_a_private_key_only_its_owner_reads(cli, tmp_path):
    assert cli("bundle", "keygen", "-o", str(tmp_path / "k"))[0] == 0
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert (tmp_path / "k").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    code, _, err = cli("bundle", "keygen", "-o", str(tmp_path / "k"))
    assert code == 2 and err == f"engine: error: {tmp_path / 'k'}: already exists; keygen never overwrites a key, " \
                                "choose another name\n"


def test_a_signed_directory_verifies(cli, signed):
    graphs, _, pub = signed
    code, out, err = verify(cli, graphs, pub)
    assert (code, err) == (0, "") and out.startswith(f"{graphs}: valid: 2 graph files signed by key ")
    body = json.loads((graphs / ".headrace-signature").read_text())
    assert sorted(body["files"]) == ["alerts.yaml", "orders.yaml"]  # not the test file
    assert (body["format"], body["kind"], body["graph_format"]) == ("headrace-bundle-v1", "directory", 2)


def test_comments_and_formatting_keep_the_signature_valid(cli, signed):
    graphs, _, pub = signed
    (graphs / "alerts.yaml").write_text("# a comment\nversion: 2\nnodes:\n  ticks:\n    type: generate\n"
                                        "    with:\n      count: 3\n      fields: {'n': i}  # quoted key\n"
                                        "  out: {type: 'stdout', from: ticks}\n")
    assert verify(cli, graphs, pub)[0] == 0


def test_a_tampered_file_is_named(cli, signed):
    graphs, _, pub = signed
    (graphs / "orders.yaml").write_text(ORDERS.replace("ORDERS:-10", "ORDERS:-11"))
    code, out, err = verify(cli, graphs, pub)
    assert (code, out) == (1, "")
    assert err == "engine: error: not valid: orders.yaml changed after signing; review the change and sign again\n"


def test_a_file_added_after_signing(cli, signed):
    graphs, _, pub = signed
    (graphs / "extra.yaml").write_text(ALERTS)
    code, _, err = verify(cli, graphs, pub)
    assert code == 1 and err == ("engine: error: not valid: extra.yaml was added after signing; review it and "
                                 "sign the directory again\n")


def test_a_removed_file_and_a_rename_break_it(cli, signed):
    graphs, _, pub = signed
    (graphs / "alerts.yaml").rename(graphs / "alarms.yaml")
    code, _, err = verify(cli, graphs, pub)
    assert code == 1
    assert "alarms.yaml was added after signing" in err and "alerts.yaml was removed after signing" in err


def test_the_order_files_are_listed_in_does_not_matter(tmp_path):
    from adapters.trust.keys import generate, load_private_key
    from adapters.trust.signature import DIRECTORY, sign

    generate(tmp_path / "k")
    key = load_private_key(tmp_path / "k")
    one = sign(DIRECTORY, {"a.yaml": ALERTS, "b.yaml": ORDERS}, key)
    other = sign(DIRECTORY, {"b.yaml": ORDERS, "a.yaml": ALERTS}, key)
    assert one.message() == other.message()
    renamed = sign(DIRECTORY, {"c.yaml": ALERTS, "b.yaml": ORDERS}, key)
    assert renamed.message() != one.message()


def test_a_signature_by_an_untrusted_key(cli, signed, tmp_path):
    graphs, _, _ = signed
    cli("bundle", "keygen", "-o", str(tmp_path / "other"))
    code, _, err = verify(cli, graphs, tmp_path / "other.pub")
    assert code == 1
    assert err.startswith(f"engine: error: not valid: {graphs / '.headrace-signature'}: signed by key ")
    assert "which is not trusted (trusted keys: " in err


def test_key_rotation_two_trusted_keys(cli, signed, tmp_path):
    graphs, _, old_pub = signed
    cli("bundle", "keygen", "-o", str(tmp_path / "new"))
    assert verify(cli, graphs, old_pub, tmp_path / "new.pub")[0] == 0
    assert cli("bundle", "sign", str(graphs), "--key", str(tmp_path / "new"))[0] == 0
    assert verify(cli, graphs, old_pub, tmp_path / "new.pub")[0] == 0
    assert verify(cli, graphs, old_pub)[0] == 1  # the old key alone no longer speaks for it


def test_a_missing_signature(cli, signed):
    graphs, _, pub = signed
    (graphs / ".headrace-signature").unlink()
    code, _, err = verify(cli, graphs, pub)
    assert code == 1
    assert err.splitlines()[0] == (f"engine: error: not valid: {graphs / '.headrace-signature'} is missing; "
                                   "sign it with `engine bundle sign DIR --key KEY`")


@pytest.mark.parametrize(("edit", "why"), [
    (lambda body: "{not json", "not JSON"),
    (lambda body: json.dumps({**body, "signature": "%%%"}), "signature is not base64"),
    (lambda body: json.dumps({**body, "files": {**body["files"], "alerts.yaml": "sha256:00"}}),
     "its digest does not match its files (edited?)"),
    (lambda body: json.dumps({k: v for k, v in body.items() if k != "key_id"}), "key_id is missing"),
])
def test_a_corrupt_signature_file_is_named(cli, signed, edit, why):
    graphs, _, pub = signed
    path = graphs / ".headrace-signature"
    path.write_text(edit(json.loads(path.read_text())))
    code, _, err = verify(cli, graphs, pub)
    assert (code, err) == (1, f"engine: error: not valid: {path}: corrupt signature file: {why}; sign again\n")


def test_an_edited_manifest_with_a_fixed_digest_fails_the_signature(cli, signed):
    from adapters.trust.canonical import canonical_json, digest

    graphs, _, pub = signed
    path = graphs / ".headrace-signature"
    body = json.loads(path.read_text())
    body["files"]["alerts.yaml"] = "sha256:" + "0" * 64
    message = {k: body[k] for k in ("format", "kind", "graph_format", "files")}
    body["digest"] = digest(canonical_json(message))
    path.write_text(json.dumps(body))
    code, _, err = verify(cli, graphs, pub)
    assert code == 1 and "the signature does not match what it lists" in err


def test_a_corrupt_key_is_named(cli, signed, tmp_path):
    graphs, key, _ = signed
    (tmp_path / "bad.pub").write_text("hello\n")
    code, out, err = verify(cli, graphs, tmp_path / "bad.pub")
    assert (code, out) == (2, "")
    assert err == (f"engine: error: {tmp_path / 'bad.pub'}: not a PEM public key; `engine bundle keygen -o NAME` "
                   "writes one to NAME.pub\n")
    code, _, err = verify(cli, graphs, key)
    assert code == 2 and "(that is a private key: give its .pub file)" in err
    code, _, err = cli("bundle", "sign", str(graphs), "--key", str(tmp_path / "ci.pub"))
    assert code == 2 and err.startswith(f"engine: error: {tmp_path / 'ci.pub'}: not an unencrypted PEM private key")
    code, _, err = cli("bundle", "sign", str(graphs), "--key", str(tmp_path / "nope"))
    assert (code, err) == (2, f"engine: error: {tmp_path / 'nope'}: no such private key file; check the path\n")


def test_a_broken_file_is_not_signed(cli, signed):
    graphs, key, _ = signed
    (graphs / "broken.yaml").write_text("version: 2\nnodes: [\n")
    code, out, err = cli("bundle", "sign", str(graphs), "--key", str(key))
    assert (code, out) == (1, "")
    assert err.startswith("engine: error: cannot sign broken.yaml:") and err.endswith("; fix the file first\n")


def test_sign_file_writes_file_sig(cli, signed):
    graphs, key, _ = signed
    code, out, err = cli("bundle", "sign-file", str(graphs / "orders.yaml"), "--key", str(key))
    assert (code, err) == (0, "") and out.endswith(f": {graphs / 'orders.yaml.sig'}\n")
    body = json.loads((graphs / "orders.yaml.sig").read_text())
    assert (body["kind"], list(body["files"])) == ("file", ["orders.yaml"])


def test_the_canonical_form_is_before_interpolation_and_after_migration():
    head = "nodes:\n  a: {type: generate, with: {count: 1}}\n"
    old = f"version: 1\n{head}  b: {{type: stdout, from: {{node: a, capacity: 8}}}}\n"
    new = f"version: 2\n{head}  b: {{type: stdout, from: {{node: a, edge: {{capacity: 8}}}}}}\n"
    assert canonical_document("g.yaml", old, 2) == canonical_document("g.yaml", new, 2)
    toml = 'version = 2\n[nodes.a]\ntype = "generate"\nwith = {count = "${N}"}\n'
    assert b'"count":"${N}"' in canonical_document("g.toml", toml, 2)
    with pytest.raises(ValueError, match="newer than the signed format 1"):
        canonical_document("g.yaml", new, 1)


def test_reordered_keys_of_an_ordered_mapping_change_the_form():
    first = 'version: 2\nnodes:\n  m: {type: map, with: {set: {a: "1", b: "a"}}}\n'
    second = 'version: 2\nnodes:\n  m: {type: map, with: {set: {b: "a", a: "1"}}}\n'
    assert canonical_document("g.yaml", first, 2) != canonical_document("g.yaml", second, 2)


def test_trusted_keys_from_the_environment_and_the_file(tmp_path):
    from adapters.settings import SettingsError, load_settings

    comma = load_settings(env={"HEADRACE_TRUSTED_KEYS": "a.pub, b.pub"})
    listed = load_settings(env={"HEADRACE_TRUSTED_KEYS": '["a.pub", "b.pub"]'})
    assert comma.trusted_keys == listed.trusted_keys == [Path("a.pub"), Path("b.pub")]
    assert load_settings(env={"HEADRACE_TRUSTED_KEYS": ""}).trusted_keys == []
    (tmp_path / "engine.toml").write_text('trusted_keys = ["ci.pub"]\n')
    assert load_settings(tmp_path / "engine.toml", env={}).trusted_keys == [Path("ci.pub")]
    with pytest.raises(SettingsError, match=r"^HEADRACE_TRUSTED_KEYS: must be a list of public key files"):
        load_settings(env={"HEADRACE_TRUSTED_KEYS": "[broken"})


def test_without_the_extra_one_line_names_it():
    from adapters.trust.keys import TrustError, _crypto

    with pytest.raises(TrustError, match=r"^signed bundles need the `cryptography` package; install it with "
                                         r"`pip install 'headrace\[trust\]'`$"):
        _crypto("cryptography_that_is_not_installed")


def test_serve_refuses_to_start_with_a_bad_trusted_key(cli, tmp_path, monkeypatch):
    (tmp_path / "graphs").mkdir()
    monkeypatch.setenv("HEADRACE_TRUSTED_KEYS", str(tmp_path / "missing.pub"))
    monkeypatch.setenv("HEADRACE_CONTROL_ADDRESS", "127.0.0.1:0")
    code, _, err = cli("serve", str(tmp_path / "graphs"))
    assert (code, err) == (2, f"engine: error: trusted_keys: {tmp_path / 'missing.pub'}: no such public key file; "
                              "check the path\n")
