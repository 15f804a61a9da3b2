"""Unit conversion with a real UCUM library (ucumvert, on pint).

Which unit a value must be converted to is data: ``b12:canonicalUnit`` on the result kind or the
drug class; an analyte's ``b12:molarMass`` turns a molar concentration into a mass concentration
(total B12: pmol/L x 1.355 = ng/L). Nothing clinical is decided here.
"""
from __future__ import annotations

from decimal import Decimal
from functools import lru_cache


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


@lru_cache(maxsize=1024)
def factor(from_unit: str, to_unit: str, molar_mass: float | None = None) -> Decimal:
    """Multiplier that turns a value in ``from_unit`` into ``to_unit``."""
    if from_unit == to_unit:
        return Decimal(1)
    src = _parse(from_unit)
    dst = _parse(to_unit)
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
    raise UnitError(f"unit '{from_unit}' cannot be converted to '{to_unit}'")


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
