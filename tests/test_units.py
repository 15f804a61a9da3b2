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


def test_a_unit_with_a_huge_numeric_factor_is_a_unit_error_not_an_overflow(capsys, tmp_path):
    """Found by the 10,000-input fuzz run of 2026-12-07 (seed 11): a mutated Turtle unit
    "1000…0" (400 digits) made pint overflow a float, a traceback in recommend and validate."""
    from decimal import Decimal

    import pytest

    from reasoner import units
    from tests.cli_helpers import run

    huge = "1" + "0" * 400
    with pytest.raises(units.UnitError, match="out of range"):
        units.convert(Decimal(5), huge, "pmol/L", 1355.37)
    f = tmp_path / "huge-unit.ttl"
    f.write_text(f"""@prefix b12: <https://w3id.org/b12kg/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:ex:p> a b12:Patient ; b12:birthDate "1960-11-30"^^xsd:date ; b12:sex b12:female .
<urn:ex:b12> a b12:TotalB12Result ; b12:subject <urn:ex:p> ; b12:value 240 ; b12:unit "{huge}" ; b12:date "2026-05-25"^^xsd:date .
""", encoding="utf-8")
    for command in ("recommend", "validate"):
        code, out, err = run(capsys, command, f, "--as-of", "2026-06-01", "-f", "json")
        assert code in (0, 1) and "Traceback" not in err, err
        assert "out of range" in out
