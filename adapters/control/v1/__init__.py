"""`headrace.control.v1`: the checked-in proto and the Python stubs generated from it
(`python -m adapters.control.generate`; tests/test_control_proto.py fails when they are stale)."""
