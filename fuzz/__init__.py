"""Property-based fuzzing of the b12kg CLI (see docs/reliability.md)."""
