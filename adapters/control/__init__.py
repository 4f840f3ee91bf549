"""The control plane: the `headrace.control.v1` gRPC service `engine serve` answers, and its client."""
