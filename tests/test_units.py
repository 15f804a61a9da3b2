"""The seeded UCUM factor table (reasoner/ucum-factors.json) is what ucumvert computes today."""
import json

from reasoner import units


def test_seed_table_is_current(kb):
    table = units.seed_table(units.seed_targets(kb))
    shipped = json.loads(units.SEED_FILE.read_text(encoding="utf-8"))
    assert table == shipped, "regenerate with: python -m reasoner.units"
    assert shipped["pmol/L -> ng/L @ 1355.0 g/mol"] == "1.355"


def test_seeded_and_computed_factors_agree():
    from decimal import Decimal

    assert units.factor("pg/mL", "ng/L", 1355.0) == units._factor("pg/mL", "ng/L", 1355.0) == Decimal(1)
    assert units.convert(Decimal("133"), "pmol/L", "ng/L", 1355.0) == Decimal("180.215")
    # a unit outside the table still goes through the library, errors included
    assert units.factor("[lb_av]", "g") > 453
    try:
        units.factor("furlong", "mg")
    except units.UnitError as exc:
        assert "UCUM" in str(exc)
    else:
        raise AssertionError("furlong converted")
