"""The guideline author's workbench: check, verify, explain, trace (one module per command)."""
