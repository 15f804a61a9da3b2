"""Test patients written as short Turtle snippets.

A snippet names records only; ``patient_turtle`` adds the prefixes, the patient ``ex:p`` and a
``b12:subject ex:p`` link on every typed record, so a case reads like the clinical story. The
wrapper is the one ``b12kg verify`` uses for TOML case files.
"""
from __future__ import annotations

from reasoner.workbench.verify import SNIPPET_PATIENT as PATIENT
from reasoner.workbench.verify import SNIPPET_PREFIXES as PREFIXES
from reasoner.workbench.verify import snippet_turtle as patient_turtle

__all__ = ["PATIENT", "PREFIXES", "patient_turtle"]
