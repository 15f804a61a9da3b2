"""Input edge cases found by a code review (docs/reliability.md, section 5): each was a traceback,
a blow-up or a silent drop before its fix. One line of error, or a listed unused record, never
anything else."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from reasoner import load as L
from tests.cli_helpers import one_line_error, run

ROOT = Path(__file__).resolve().parents[1]
CASE01 = ROOT / "examples" / "case01-b12-179-metformin-deficient.ttl"
CASE01_FHIR = ROOT / "examples" / "fhir" / "case01-b12-179-metformin-deficient.fhir.json"
AS_OF = "2026-06-01"


def _b12_bundle(tmp_path: Path, value: str, comparator: str | None = None) -> Path:
    """case01's FHIR bundle with its B12 result's value replaced by the raw JSON text ``value``."""
    bundle = json.loads(CASE01_FHIR.read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Observation" and res["code"]["coding"][0]["code"] == "2132-9":
            res["valueQuantity"]["value"] = "__VALUE__"
            if comparator:
                res["valueQuantity"]["comparator"] = comparator
            rid = res["id"]
    f = tmp_path / "huge.fhir.json"
    f.write_text(json.dumps(bundle).replace('"__VALUE__"', value), encoding="utf-8")
    return f, rid


@pytest.mark.parametrize("comparator", [None, "<"])
def test_a_huge_decimal_exponent_is_out_of_range_not_a_memory_error(tmp_path, capsys, comparator):
    # 1e99999999999 is 14 bytes of JSON; int() or format(..., "f") of it needs gigabytes
    f, rid = _b12_bundle(tmp_path, "1e99999999999", comparator)
    code, out, err = run(capsys, "recommend", f, "--as-of", AS_OF, "-f", "json")
    assert code == 0, err
    unused = [u for p in json.loads(out)["patients"] for u in p["unused"]]
    hit = [u for u in unused if u["resource"].endswith(rid)]
    assert hit and "out of range" in hit[0]["reason"], unused
    code, out, err = run(capsys, "convert", f)
    assert code == 0, err


def test_a_large_but_plain_value_is_still_read(tmp_path, capsys):
    f, rid = _b12_bundle(tmp_path, "1e50")
    code, out, err = run(capsys, "recommend", f, "--as-of", AS_OF, "-f", "json")
    assert code == 0, err
    assert not any("out of range (beyond" in u["reason"] for p in json.loads(out)["patients"] for u in p["unused"])


def test_a_bundle_entry_without_resource_is_never_dropped_silently(tmp_path, capsys):
    bundle = json.loads(CASE01_FHIR.read_text(encoding="utf-8"))
    n = len(bundle["entry"])
    bundle["entry"][1]["Resource"] = bundle["entry"][1].pop("resource")  # a misspelt key
    bad = tmp_path / "bad.fhir.json"
    bad.write_text(json.dumps(bundle), encoding="utf-8")
    code, _, err = run(capsys, "recommend", bad, "--as-of", AS_OF)
    assert code == 2 and "entry 1: has no 'resource' (its keys: Resource" in one_line_error(err)
    # in a folder (lenient), it is listed unused and the rest is read
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(bad, folder / "bad.fhir.json")
    data = L.load_sources([str(folder)])
    assert any("entry 1: has no 'resource'" in u.reason for u in data.unused)
    assert data.resources_read == n
    # a DELETE request carries no resource by design: listed, counted, not an error
    bundle = json.loads(CASE01_FHIR.read_text(encoding="utf-8"))
    bundle["entry"].append({"request": {"method": "DELETE", "url": "Observation/gone"}})
    ok = tmp_path / "delete.fhir.json"
    ok.write_text(json.dumps(bundle), encoding="utf-8")
    data = L.load_sources([str(ok)])
    assert any("a DELETE request entry carries no resource" in u.reason for u in data.unused)
    assert data.resources_read == n + 1


def _deep_triple_terms(path: Path, levels: int) -> Path:
    path.write_text("<x:s> <x:p> " + "<<( <x:s> <x:p> " * levels + "<x:o>" + " )>>" * levels + " .\n", encoding="utf-8")
    return path


def test_deeply_nested_triple_terms_are_refused_in_one_line(tmp_path, capsys):
    deep = _deep_triple_terms(tmp_path / "deep.nt", 2000)  # was a RecursionError traceback
    for command in (["convert"], ["recommend", "--as-of", AS_OF], ["load", "--store", tmp_path / "st"]):
        code, _, err = run(capsys, command[0], deep, *command[1:])
        assert code == 2 and "triple terms nested more than 256 levels" in one_line_error(err), (command, err)
    shallow = _deep_triple_terms(tmp_path / "shallow.nt", 200)
    code, _, err = run(capsys, "load", shallow, "--store", tmp_path / "st2")
    assert code == 0 and "1 triples belong to no patient" in err, err


def test_file_names_that_are_not_utf8_are_shown_escaped(tmp_path, capsys):
    folder = tmp_path / "names"
    folder.mkdir()
    shutil.copy(CASE01, folder / "a.ttl")
    try:
        (folder / os.fsdecode(b"junk\xfe.ttl")).write_bytes(b"garbage")
        (folder / os.fsdecode(b"sub\xfd")).mkdir()
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    for fmt in ("json", "text", "ndjson"):
        code, out, err = run(capsys, "recommend", folder, "--as-of", AS_OF, "-f", fmt)
        assert code == 0, (fmt, err)
        assert "junk\\udcfe.ttl" in out or "junk\\\\udcfe.ttl" in out, (fmt, out[-500:])


def test_a_folder_entry_swapped_for_a_link_after_the_listing_is_not_read(tmp_path, monkeypatch):
    folder = tmp_path / "race"
    folder.mkdir()
    shutil.copy(CASE01, folder / "a.ttl")
    (folder / "b.ttl").write_text("<x:a> <x:b> <x:c> .\n", encoding="utf-8")
    secret = tmp_path / "secret.ttl"
    secret.write_text('<urn:secret> <urn:is> "outside the folder" .\n', encoding="utf-8")
    listed = L._folder_files

    def racing(p):  # the attacker's swap, between the listing and the read
        out = listed(p)
        (folder / "b.ttl").unlink()
        (folder / "b.ttl").symlink_to(secret)
        return out

    monkeypatch.setattr(L, "_folder_files", racing)
    data = L.load_sources([str(folder)])
    assert not any("secret" in str(q.subject) for q in data.quads)
    assert any(u.reason.startswith("b.ttl: changed between the folder listing and the read") for u in data.unused)
