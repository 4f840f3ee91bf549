"""Regenerate the Python stubs of the control-plane proto (needs grpcio-tools, a dev extra).

    python -m adapters.control.generate

The stubs are committed so that a running engine needs only grpcio and protobuf;
tests/test_control_proto.py regenerates them into a temporary folder and fails when the
committed ones differ.
"""

import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PROTO = "adapters/control/v1/control.proto"
OUTPUTS = ("adapters/control/v1/control_pb2.py", "adapters/control/v1/control_pb2.pyi",
           "adapters/control/v1/control_pb2_grpc.py")


def generate(out: Path) -> None:
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", PROTO]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        for name in OUTPUTS:
            (ROOT / name).write_text((Path(tmp) / name).read_text())
            print(f"wrote {name}")


if __name__ == "__main__":
    main()
