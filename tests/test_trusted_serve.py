"""`engine serve` with trusted_keys: only a directory state signed by a trusted key is applied."""

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from adapters.control.audit import verify as verify_audit
from adapters.control.server import ControlPlane
from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc
from adapters.trust.gate import TrustGate
from adapters.trust.keys import generate, load_private_key, load_public_keys
from adapters.trust.signature import DIRECTORY, FILE, SIGNATURE_NAME, sign
from tests.serve_support import Serving, events, ticking_graph


def keys(tmp_path: Path, name: str) -> Path:
    generate(tmp_path / name)
    return tmp_path / name


def sign_directory(graphs: Path, key: Path) -> None:
    files = {p.name: p.read_text() for p in graphs.glob("*.yaml")}
    (graphs / SIGNATURE_NAME).write_text(sign(DIRECTORY, files, load_private_key(key)).to_text())


def serving(tmp_path: Path, *trusted: Path) -> Serving:
    s = Serving(tmp_path / "graphs")
    s.server.gate = TrustGate(s.server.directory, load_public_keys([k.with_name(k.name + ".pub") for k in trusted]),
                              s.host)
    return s


def test_a_file_edited_after_signing_is_rejected_and_the_old_version_keeps_running(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    key = keys(tmp_path, "ci")
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))
    sign_directory(graphs, key)
    published: list[tuple[str, str, dict[str, object]]] = []

    async def main() -> None:
        s = serving(tmp_path, key)
        s.host.listeners.append(lambda kind, file, graph, detail, record: published.append((file, detail, record)))
        async with s:
            assert s.results("g.yaml") == ["added"]
            (graphs / "g.yaml").write_text(ticking_graph(out, "B"))  # not signed
            await s.until(lambda: "rejected" in s.results("g.yaml"), what="the edit rejected")
            rejected = s.history[-1][0]
            assert rejected.problems == ["g.yaml changed after signing; review the change and sign again"]
            assert s.host.status["g.yaml"].last_result == "rejected"
            seen = len(events(out))
            await s.until(lambda: len(events(out)) > seen + 20, what="the old version running on")
            assert {e["v"] for e in events(out)} == {"A"}
            assert published[-1][1] == "g.yaml: rejected" and published[-1][2]["problems"] == rejected.problems
            sign_directory(graphs, key)  # reviewed and signed: now it applies
            await s.until(lambda: "updated" in s.results("g.yaml"), what="the signed edit applied")
            await s.until(lambda: any(e["v"] == "B" for e in events(out)), what="the new version's events")

    asyncio.run(main())


def test_an_untrusted_or_missing_signature_runs_nothing_and_rotation_keeps_serving(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    old, new, stranger = keys(tmp_path, "old"), keys(tmp_path, "new"), keys(tmp_path, "stranger")
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))

    async def main() -> None:
        s = serving(tmp_path, old, new)
        async with s:
            assert s.results("g.yaml") == ["rejected"] and not s.host.graphs
            assert s.history[0][0].problems[0] == f"{graphs / SIGNATURE_NAME} is missing; sign it with " \
                                                  "`engine bundle sign DIR --key KEY`"
            sign_directory(graphs, stranger)
            await s.until(lambda: len(s.history) >= 2, what="a reload on the new signature")
            assert "which is not trusted" in s.history[-1][0].problems[0] and not s.host.graphs
            sign_directory(graphs, old)
            await s.until(lambda: "added" in s.results("g.yaml"), what="the signed graph started")
            before, running = len(s.history), s.host.graphs["g.yaml"]
            sign_directory(graphs, new)  # rotation: the new key signs, the graph is unchanged and keeps running
            await s.until(lambda: len(s.history) > before, what="a reload on the rotated signature")
            assert s.results("g.yaml")[-1] == "unchanged" and s.host.graphs["g.yaml"] is running

    asyncio.run(main())


def test_a_corrupt_signature_alone_is_reported_and_audited(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    key = keys(tmp_path, "ci")
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))
    sign_directory(graphs, key)
    published: list[str] = []

    async def main() -> None:
        s = serving(tmp_path, key)
        s.host.listeners.append(lambda kind, file, graph, detail, record: published.append(detail))
        async with s:
            plane = ControlPlane("127.0.0.1:0", None, None, None, None, tmp_path / "audit.jsonl", s.server,
                                 s.host, 5.0)
            assert s.server.gate is not None
            s.server.gate.audit = plane.audit
            (graphs / SIGNATURE_NAME).write_text("{broken")
            await s.until(lambda: any(d.startswith(SIGNATURE_NAME) for d in published), what="the refusal")
            assert s.host.graphs["g.yaml"].state == "running"

    asyncio.run(main())
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert (record["principal"], record["method"], record["result"]) == ("serve", "Reload", "rejected: signature")
    assert record["detail"] == f"{graphs / SIGNATURE_NAME}: corrupt signature file: not JSON; sign again"
    assert verify_audit(tmp_path / "audit.jsonl") == []


def test_ctl_apply_needs_a_signature_over_the_file(tmp_path):
    graphs, out = tmp_path / "graphs", tmp_path / "out.jsonl"
    graphs.mkdir()
    key = keys(tmp_path, "ci")
    (graphs / "g.yaml").write_text(ticking_graph(out, "A"))
    sign_directory(graphs, key)
    document = ticking_graph(tmp_path / "new.jsonl", "N")

    async def main() -> None:
        s = serving(tmp_path, key)
        async with s:
            plane = ControlPlane("127.0.0.1:0", None, None, None, None, tmp_path / "audit.jsonl", s.server,
                                 s.host, 5.0)
            await plane.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.port}") as channel:
                    stub = control_pb2_grpc.ControlStub(channel)
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.Apply(pb.ApplyRequest(file="n.yaml", document=document))
                    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                    assert refused.value.details().startswith("n.yaml has no signature and the engine accepts only "
                                                              "signed graphs (trusted_keys)")
                    assert not (graphs / "n.yaml").exists()
                    wrong = sign(FILE, {"other.yaml": document}, load_private_key(key)).to_text()
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.Apply(pb.ApplyRequest(file="n.yaml", document=document, signature=wrong))
                    assert "is for other.yaml, not n.yaml" in refused.value.details()
                    signature = sign(FILE, {"n.yaml": document}, load_private_key(key)).to_text()
                    reply = await stub.Apply(pb.ApplyRequest(file="n.yaml", document=document, signature=signature))
                    assert reply.result.result == "added"
                    assert (graphs / ".n.yaml.sig").read_text() == signature
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.Remove(pb.RemoveRequest(graph="n"))
                    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                    # The directory with the applied file still verifies: a later reload keeps it.
                    reloaded = await stub.Reload(pb.ReloadRequest())
                    assert {r.file: r.result for r in reloaded.results} == {"g.yaml": "unchanged",
                                                                          "n.yaml": "unchanged"}
            finally:
                await plane.stop(0)

    asyncio.run(main())
    results = [json.loads(line)["result"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert results.count("refused: signature") == 3 and "added" in results
