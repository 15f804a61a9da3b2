"""Ontology-level OWL 2 DL reasoning with owlready2 + HermiT (consistency, unsatisfiable classes).

Patient classification uses the OWL 2 RL reasoner (classify.py); this module checks the encoding
itself, the way a guideline author or CI would, and needs Java (HermiT ships with owlready2).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field


@dataclass
class OwlCheck:
    consistent: bool
    unsatisfiable: list[str] = field(default_factory=list)
    message: str = ""


def hermit_check(kb) -> OwlCheck:
    import owlready2

    data = kb.ontology_rdflib.serialize(format="xml").encode("utf-8")
    world = owlready2.World()
    onto = world.get_ontology("https://w3id.org/b12kg/").load(fileobj=io.BytesIO(data))
    try:
        with onto:
            owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
    except owlready2.OwlReadyInconsistentOntologyError as exc:
        return OwlCheck(False, [], str(exc))
    except owlready2.OwlReadyJavaError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("at ")]
        return OwlCheck(False, [], " ".join(lines)[:500])
    unsat = sorted(c.iri for c in world.inconsistent_classes())
    return OwlCheck(True, unsat)
