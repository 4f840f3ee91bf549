"""`engine serve` with `trusted_keys`: each reload's directory state is verified before any
graph in it is applied.

A state that is not signed by a trusted key is refused as a whole (a reviewed bundle is one
unit): every graph file that differs from the last verified state is `rejected` with the
reason, what runs keeps running, the refusal is logged, published to `engine ctl events`
and written to the audit log. Signature files are part of the state: a re-signed directory
(or a `git checkout` that brings files and signature together) is a new state.
"""

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from adapters.control.audit import AuditLog
from adapters.serve.host import Host, ReloadResult
from adapters.serve.scan import Snapshot
from adapters.serve.vocabulary import REJECTED
from adapters.trust.keys import TrustError, load_public_keys
from adapters.trust.signature import SIGNATURE_NAME, Verdict, read_seal, verify

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LOG: Final = logging.getLogger("headrace.reload")
PRINCIPAL: Final = "serve"  # the audit log's principal for reloads the directory watch starts


class TrustGate:
    def __init__(self, directory: Path, keys: "Mapping[str, Ed25519PublicKey]", host: Host,
                 audit: AuditLog | None = None) -> None:
        self.directory = directory
        self.keys = keys
        self.host = host
        self.audit = audit
        self.trusted: Snapshot = {}  # the last state that verified: what runs came from it

    @classmethod
    def from_paths(cls, directory: Path, paths: list[Path], host: Host) -> "TrustGate":
        """Raises TrustError (one line naming the key file) when a key cannot be loaded."""
        try:
            return cls(directory, load_public_keys(paths), host)
        except TrustError as exc:
            raise TrustError(f"trusted_keys: {exc}") from None

    def seal(self, snapshot: Snapshot) -> dict[str, bytes]:
        return read_seal(self.directory, snapshot)

    def verify(self, snapshot: Snapshot, seal: Mapping[str, bytes]) -> Verdict:
        return verify(self.directory, snapshot, seal, self.keys)

    def admit(self, snapshot: Snapshot, verdict: Verdict) -> list[ReloadResult] | None:
        """None when the state may be applied; else the reload's results, already reported."""
        target = str(self.directory)
        if verdict.ok:
            if snapshot != self.trusted:
                signers = ", ".join(sorted(set(verdict.key_ids)))
                self._audit(target, "verified", f"signed by {signers}" if signers else "no graph files")
            self.trusted = snapshot
            return None
        changed = sorted(n for n in set(snapshot) | set(self.trusted)
                         if snapshot.get(n) != self.trusted.get(n))
        reason = "; ".join(verdict.problems)
        self._audit(target, "rejected: signature", reason)
        results = []
        for name in changed:
            running = self.host.graphs.get(name)
            graph = running.name if running is not None else ""
            results.append(ReloadResult(name, graph, REJECTED, running.plan_hash if running is not None else "",
                                        problems=list(verdict.problems)))
        if results:
            self.host.report(results)
        else:  # only a signature file changed: no graph file to name, the event names the signature
            record: dict[str, object] = {"file": SIGNATURE_NAME, "result": REJECTED, "problems": verdict.problems}
            LOG.warning("reload", extra={"reload": record})
            self.host.publish("reload", SIGNATURE_NAME, "", f"{SIGNATURE_NAME}: {REJECTED} ({reason})", record)
        return results

    def _audit(self, target: str, result: str, detail: str) -> None:
        if self.audit is not None:
            self.audit.record(PRINCIPAL, "Reload", target, result, detail)
