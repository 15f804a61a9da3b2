"""The Python API: as small as pySHACL's ``validate()``.

>>> from reasoner import recommend
>>> report = recommend("examples/p01-deficient-metformin.ttl", as_of="2026-06-01")   # doctest: +SKIP
>>> [i["id"] for i in report.patients[0]["recommendations"]]                        # doctest: +SKIP
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

from .errors import UsageError
from .kb import KnowledgeBase
from .load import PatientData, load_sources, parse_rdf
from .pipeline import Evaluation, evaluate

_KB: KnowledgeBase | None = None


def default_kb() -> KnowledgeBase:
    """The shipped encoding, loaded once per process."""
    global _KB
    if _KB is None:
        _KB = KnowledgeBase()
    return _KB


def parse_as_of(value: str | dt.date | None) -> dt.date:
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"--as-of: '{value}' is not a date (use YYYY-MM-DD)") from None


@dataclass
class Report:
    """One evaluation: the report as RDF, as a dict (the JSON contract) and as text."""

    evaluation: Evaluation

    @cached_property
    def data(self) -> dict:
        from .report import to_dict

        return to_dict(self.evaluation)

    @property
    def patients(self) -> list[dict]:
        return self.data["patients"]

    @property
    def conforms(self) -> bool:
        """True when no patient has a safety violation of severity Violation."""
        return not any(v["severity"] == "Violation" for p in self.patients for v in p["violations"])

    def ids(self, patient: str | None = None) -> set[str]:
        """Catalog identifiers that fired (for one patient, or all)."""
        out = set()
        for p in self.patients:
            if patient is None or p["patient"] == patient:
                for key in ("findings", "recommendations", "violations", "conflicts"):
                    out.update(i["id"] for i in p[key])
        return out

    def serialize(self, format: str = "json") -> str:
        from . import report as r

        if format == "json":
            return r.to_json(self.evaluation)
        if format == "text":
            return r.to_text(self.evaluation)
        if format in ("turtle", "jsonld", "nt"):
            return r.to_rdf(self.evaluation, format)
        if format == "html":
            from .html import render_html

            return render_html(self)
        raise UsageError(f"unknown format '{format}'")

    @property
    def store(self):
        """The pyoxigraph store with ontology, facts, inferences and report (named graphs)."""
        return self.evaluation.store

    def query(self, sparql: str):
        return self.evaluation.query(sparql)


def recommend(
    data: str | Path | Iterable[str | Path] | PatientData,
    as_of: str | dt.date | None = None,
    *,
    input_format: str | None = None,
    kb: KnowledgeBase | None = None,
) -> Report:
    """Evaluate patient data (file paths, or Turtle text via ``PatientData``) against the guideline."""
    kb = kb or default_kb()
    if isinstance(data, PatientData):
        pdata = data
    elif isinstance(data, (str, Path)):
        pdata = load_sources([str(data)], fmt=input_format)
    else:
        pdata = load_sources([str(p) for p in data], fmt=input_format)
    return Report(evaluate(kb, pdata, parse_as_of(as_of)))


def recommend_text(turtle: str, as_of: str | dt.date | None = None, *, name: str = "<string>", kb: KnowledgeBase | None = None) -> Report:
    """Evaluate patient data given as Turtle text."""
    return recommend(parse_rdf(name, turtle.encode("utf-8"), fmt="turtle"), as_of, kb=kb)
