"""HTTP in and out: `http.listen` and `http.post` (docs/http.md)."""
