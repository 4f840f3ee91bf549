"""`engine diagnostics collect`: a support bundle that holds no secrets (docs/diagnostics.md)."""
