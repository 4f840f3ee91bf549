"""What both halves of `engine ctl` share: where the control plane is (address and token,
from the command line or the environment) and a Refusal (an error line and an exit code).

`ctl.py` parses the command line and formats answers without loading grpc; `ctl_client.py`
holds the gRPC channel. Both import this module and neither imports the other at load time.
"""

import os
import sys
from collections.abc import Sequence

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_VARIABLE = "HEADRACE_CONTROL_ADDRESS"
TOKEN_VARIABLE = "HEADRACE_CONTROL_TOKEN"
DEFAULT_TIMEOUT_S = 10.0


class Refusal(Exception):
    """A command that cannot go on: one `engine: error:` line, the lines the server sent
    after it (problems, one each), and the exit code."""

    def __init__(self, message: str, code: int, more: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.more = list(more)

    def report(self) -> int:
        print(f"engine: error: {self.message}", file=sys.stderr)
        for line in self.more:
            print(line, file=sys.stderr)
        return self.code


def resolve_address(given: str | None) -> str:
    return given or os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS


def resolve_token(given: str | None) -> str:
    return given if given is not None else os.environ.get(TOKEN_VARIABLE, "")
