"""Unit conversion with a real UCUM library (ucumvert, on pint).

Which unit a value must be converted to is data: ``b12:canonicalUnit`` on the result kind or the
drug class; an analyte's ``b12:molarMass`` turns a molar concentration into a mass concentration
(total B12: pmol/L x 1.355 = ng/L). Nothing clinical is decided here.
"""
from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

#: Factors ucumvert computed for the units records usually carry (generated, not edited: ``python
#: -m reasoner.units``; tests/test_units.py checks it is current). Building the UCUM registry takes
#: ~2.5 s per process, which a cohort worker or a cold start would otherwise pay for pg/mL -> ng/L.
SEED_FILE = Path(__file__).with_name("ucum-factors.json")
#: Units the seed table covers, converted to every canonical unit of the ontology: the units of
#: docs/guideline/TERMINOLOGY.md (labs, doses), FHIR timing units (to days) and lengths (to cm).
SEED_UNITS = ("pg/mL", "ng/L", "pmol/L", "umol/L", "nmol/L", "ng/mL", "%", "mg/dL", "mmol/L", "m[IU]/L",
              "10*3/uL", "10*9/L", "g/dL", "g/L", "mL/min/{1.73_m2}", "ug/dL", "ug/L", "mg/L",
              "mg", "ug", "g", "s", "min", "h", "d", "wk", "mo", "a", "mm", "cm", "m")


class UnitError(ValueError):
    pass


@lru_cache(maxsize=1)
def _registry():
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@lru_cache(maxsize=256)
def _parse(unit: str):
    ureg = _registry()
    try:
        return ureg.from_ucum(unit)
    except Exception:  # ucumvert raises lark/pint errors of several kinds
        raise UnitError(f"'{unit}' is not a UCUM unit") from None


def _decimal(x: float) -> Decimal:
    # Conversions through floats leave noise (180 pg/mL -> 179.99999999 ng/L); 9 significant
    # decimals are far below any clinical precision and keep bounds exact.
    return Decimal(repr(round(float(x), 9))).normalize()


def _seed_key(from_unit: str, to_unit: str, molar_mass: float | None) -> str:
    return f"{from_unit} -> {to_unit}" + ("" if molar_mass is None else f" @ {float(molar_mass)!r} g/mol")


@lru_cache(maxsize=1)
def _seeded() -> dict[str, str]:
    try:
        return json.loads(SEED_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@lru_cache(maxsize=1024)
def factor(from_unit: str, to_unit: str, molar_mass: float | None = None) -> Decimal:
    """Multiplier that turns a value in ``from_unit`` into ``to_unit``."""
    if from_unit == to_unit:
        return Decimal(1)
    seeded = _seeded().get(_seed_key(from_unit, to_unit, molar_mass))
    if seeded is not None:
        return Decimal(seeded)
    return _factor(from_unit, to_unit, molar_mass)


def _factor(from_unit: str, to_unit: str, molar_mass: float | None = None) -> Decimal:
    """The factor computed by ucumvert (no seed table)."""
    src = _parse(from_unit)
    dst = _parse(to_unit)
    try:
        return _factor_of(src, dst, molar_mass)
    except ArithmeticError:  # a unit with a huge numeric factor ("1000…0"): pint overflows a float
        raise UnitError(f"unit '{from_unit}' is out of range") from None
    except UnitError:
        raise UnitError(f"unit '{from_unit}' cannot be converted to '{to_unit}'") from None


def _factor_of(src, dst, molar_mass: float | None) -> Decimal:
    q = 1 * src
    try:
        return _decimal(q.to(dst).magnitude)
    except Exception:
        pass
    if molar_mass is not None:
        mm = molar_mass * _parse("g/mol")
        for candidate in (q * mm, q / mm):
            try:
                return _decimal(candidate.to(dst).magnitude)
            except Exception:
                continue
    raise UnitError("not convertible")


_CONTEXT = 80  # digits: enough for any value a record can carry, to 9 decimals


def convert(value: Decimal, from_unit: str, to_unit: str, molar_mass: float | None = None) -> Decimal:
    from decimal import InvalidOperation, localcontext

    f = factor(from_unit, to_unit, molar_mass)
    with localcontext() as ctx:
        ctx.prec = _CONTEXT
        try:
            out = (Decimal(value) * f).quantize(Decimal("0.000000001"))
        except InvalidOperation:
            raise UnitError(f"value {value} {from_unit} is out of range") from None
    return out.normalize()


def seed_table(targets: list[tuple[str, float | None]]) -> dict[str, str]:
    """Every convertible (seed unit -> target unit [, molar mass]) factor, computed by ucumvert."""
    out: dict[str, str] = {}
    for to_unit, molar_mass in sorted(set(targets), key=lambda t: (t[0], t[1] or 0.0)):
        for from_unit in SEED_UNITS:
            if from_unit == to_unit:
                continue
            try:
                out[_seed_key(from_unit, to_unit, molar_mass)] = str(_factor(from_unit, to_unit, molar_mass))
            except UnitError:
                continue
    return dict(sorted(out.items()))


def seed_targets(kb) -> list[tuple[str, float | None]]:
    """The canonical units (with molar masses) of the knowledge base, plus days and centimetres."""
    rows = kb.ontology_store.query(
        "PREFIX b12: <https://w3id.org/b12kg/> SELECT DISTINCT ?u ?mm WHERE { ?k b12:canonicalUnit ?u OPTIONAL { ?k b12:molarMass ?mm } }",
        use_default_graph_as_union=True)
    targets = [(r["u"].value, float(r["mm"].value) if r["mm"] is not None else None) for r in rows]
    return targets + [("d", None), ("cm", None)]


def main() -> int:
    from .api import default_kb

    table = seed_table(seed_targets(default_kb()))
    SEED_FILE.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{SEED_FILE}: {len(table)} factors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
