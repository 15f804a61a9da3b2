"""FHIR R4 importer: Bundles, single resources and Bulk Data NDJSON become patient facts.

The importer writes the patient vocabulary of the README ("Patient vocabulary"). Every record's
IRI is the FHIR resource itself (``urn:fhir:<Type>/<id>``, or the entry's ``fullUrl`` when that is
an absolute http(s) URL, or the ``urn:uuid:`` fullUrl of an entry without an id), so the report's
``because`` names FHIR resources. A record built from more than one resource (a medication use and
its Medication, an ileal resection and the Observation of its length) keeps
``prov:wasDerivedFrom`` links to the others.

Terminology is data. Codes are looked up in the ontology once per process:

* code IRI = the ``b12:iriPrefix`` of the ``b12:CodeSystem`` whose ``b12:fhirSystem`` is the
  coding's system, + the code;
* a record is typed with every concept class whose ``skos:exactMatch`` or ``b12:unverifiedCode``
  is one of its codes (and keeps ``b12:code``);
* drugs, routes and coded values (negative ...) are the individuals matching a code the same way;
* statuses, interpretation flags and sex are individuals found by ``skos:notation``; a status with
  ``b12:excludesRecord true`` (refuted, entered-in-error, cancelled, not-taken) keeps the record
  out of the facts and lists it as unused;
* a dosing frequency is the ``b12:Frequency`` whose ``b12:timingFrequency`` / ``timingPeriod`` /
  ``timingPeriodUnit`` equal ``timing.repeat``; otherwise a node with ``b12:intervalDays``
  (days per period unit taken from the same individuals, UCUM for units they do not use).

Nothing is dropped silently: every resource read is either used (``PatientData.used``) or listed in
``PatientData.unused`` with the reason. Entries with ``note=True`` say that part of a *used*
resource was not used (a dose without a unit, a drug matched by display text ...).

Bad input (invalid JSON, not FHIR R4, a reference to nothing, an impossible date) raises
:class:`InputError` naming the file and the resource id (NDJSON: the line). In an NDJSON file or a
folder, one bad record does not stop the others: it is listed as unused with the reason, and the
input only fails when nothing at all could be read from it.

The length of ileum resected arrives as an Observation coded ``local:ileal-resection-length``
whose ``partOf`` is the Procedure, or as a Procedure extension with ``valueQuantity`` and the URL
:data:`RESECTED_LENGTH_EXTENSION`. Either becomes ``b12:resectedLengthCm`` on the procedure.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import pyoxigraph as ox

from . import units
from .errors import InputError
from .load import PatientData, UnusedInput, lone_surrogate
from .vocab import BASE, G_DATA, RDF_TYPE, XSD, b12, prov, sparql_prefixes

#: Procedure extension carrying the resected length (valueQuantity, any UCUM length unit).
RESECTED_LENGTH_EXTENSION = "https://w3id.org/b12kg/fhir/StructureDefinition/resected-length"

# Resource types the importer reads; every other (valid R4) type is listed as unused.
READ_TYPES = ("Patient", "Observation", "Condition", "Procedure", "MedicationStatement",
              "MedicationRequest", "MedicationAdministration", "Medication")

# FHIR R4 (4.0.1) resource types: a resourceType outside this list is not FHIR R4.
R4_RESOURCE_TYPES = frozenset("""
Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent
Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam
CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem
Communication CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent
Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device
DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest
DocumentReference EffectEvidenceSynthesis Encounter Endpoint EnrollmentRequest EnrollmentResponse
EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy
Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan
Invoice Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson RequestGroup
ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer
SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification
SupplyDelivery SupplyRequest Task TerminologyCapabilities TestReport TestScript ValueSet
VerificationResult VisionPrescription
""".split())

#: Quantity.system of UCUM (FHIR R4 spec); a code in another unit system is not read as UCUM.
_UCUM = "http://unitsofmeasure.org"

_XSD_DATE = ox.NamedNode(XSD + "date")
_XSD_DECIMAL = ox.NamedNode(XSD + "decimal")
_XSD_INTEGER = ox.NamedNode(XSD + "integer")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_REF_TAIL = re.compile(r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


# --------------------------------------------------------------------------------------------
# Terminology tables (SPARQL over the shipped ontology, once per process)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concept:
    iri: str
    lab: bool  # a b12:LabResult kind: value, unit, date, flag, reference range
    procedure: bool
    coded_observation: bool
    canonical_unit: str | None


@dataclass
class Terminology:
    systems: dict[str, str]  # FHIR system URI -> code IRI prefix
    concepts: dict[str, list[Concept]]  # code IRI -> concept classes
    drugs: dict[str, list[str]]  # code IRI -> drug individuals
    routes: dict[str, str]  # code IRI -> route individual
    values: dict[str, str]  # code IRI -> other individuals (coded result values)
    drug_labels: dict[str, str]  # normalised rdfs:label -> drug individual (unique labels only)
    statuses: dict[str, tuple[str, bool]]  # skos:notation -> (status individual, excludes record)
    interpretations: dict[str, str]  # skos:notation -> interpretation individual
    sexes: dict[str, str]  # skos:notation -> sex individual
    frequencies: dict[tuple[int, Decimal, str], str]  # (frequency, period, unit) -> individual
    days_per_unit: dict[str, Decimal]  # timing period unit -> days, as the ontology counts them
    negative: frozenset[str]  # individuals that say a finding is absent (skos:exactMatch sct:260385009 ...)

    def code_iri(self, system: str | None, code: str) -> str | None:
        prefix = self.systems.get(system or "")
        if prefix is None:
            return None
        return prefix + quote(code, safe="-._~")

    def period_days(self, unit: str) -> Decimal | None:
        if unit in self.days_per_unit:
            return self.days_per_unit[unit]
        try:
            return units.factor(unit, "d")
        except units.UnitError:
            return None


def _q(store: ox.Store, text: str):
    return store.query(sparql_prefixes() + text, use_default_graph_as_union=True)


def _v(term):
    return None if term is None else term.value


def _norm_label(label: str) -> str:
    label = re.sub(r"\([^)]*\)", " ", label.lower())
    return " ".join(re.findall(r"[a-z0-9]+", label))


@lru_cache(maxsize=4)
def terminology(kb) -> Terminology:
    """Lookup tables built from the knowledge base's ontology (cached per KnowledgeBase)."""
    store = kb.ontology_store
    systems = {r["system"].value: r["prefix"].value for r in _q(store, """
        SELECT ?system ?prefix WHERE { ?cs a b12:CodeSystem ; b12:fhirSystem ?system ; b12:iriPrefix ?prefix }""")}
    concepts: dict[str, list[Concept]] = {}
    for r in _q(store, """
        SELECT DISTINCT ?code ?concept ?lab ?proc ?obs ?unit WHERE {
          ?concept skos:exactMatch|b12:unverifiedCode ?code ; a owl:Class .
          BIND(EXISTS { ?concept rdfs:subClassOf* b12:LabResult } AS ?lab)
          BIND(EXISTS { ?concept rdfs:subClassOf* b12:Procedure } AS ?proc)
          BIND(EXISTS { ?concept rdfs:subClassOf* b12:CodedObservation } AS ?obs)
          OPTIONAL { ?concept rdfs:subClassOf* ?kind . ?kind b12:canonicalUnit ?unit }
        } ORDER BY ?code ?concept"""):
        c = Concept(r["concept"].value, r["lab"].value == "true", r["proc"].value == "true",
                    r["obs"].value == "true", _v(r["unit"]))
        lst = concepts.setdefault(r["code"].value, [])
        if all(x.iri != c.iri for x in lst):
            lst.append(c)
    drugs: dict[str, list[str]] = {}
    routes: dict[str, str] = {}
    values: dict[str, str] = {}
    for r in _q(store, """
        SELECT DISTINCT ?code ?ind ?isDrug ?isRoute WHERE {
          ?ind skos:exactMatch|b12:unverifiedCode ?code ; a owl:NamedIndividual .
          BIND(EXISTS { ?ind a/rdfs:subClassOf* b12:Drug } AS ?isDrug)
          BIND(EXISTS { ?ind a/rdfs:subClassOf* b12:Route } AS ?isRoute)
        } ORDER BY ?code ?ind"""):
        code, ind = r["code"].value, r["ind"].value
        if r["isDrug"].value == "true":
            drugs.setdefault(code, []).append(ind)
        elif r["isRoute"].value == "true":
            routes.setdefault(code, ind)
        else:
            values.setdefault(code, ind)
    labels: dict[str, set[str]] = {}
    for r in _q(store, """
        SELECT DISTINCT ?ind ?label WHERE { ?ind a/rdfs:subClassOf* b12:Drug ; a owl:NamedIndividual ; rdfs:label ?label }"""):
        labels.setdefault(_norm_label(r["label"].value), set()).add(r["ind"].value)
    drug_labels = {k: next(iter(v)) for k, v in labels.items() if k and len(v) == 1}
    statuses: dict[str, tuple[str, bool]] = {}
    interpretations: dict[str, str] = {}
    sexes: dict[str, str] = {}
    for r in _q(store, """
        SELECT DISTINCT ?ind ?notation ?cls ?excludes WHERE {
          ?ind skos:notation ?notation ; a ?cls .
          VALUES ?cls { b12:RecordStatus b12:Interpretation b12:Sex }
          OPTIONAL { ?ind b12:excludesRecord ?excludes }
        } ORDER BY ?notation ?ind"""):
        notation, ind, cls = r["notation"].value, r["ind"].value, r["cls"].value
        if cls == BASE + "RecordStatus":
            statuses.setdefault(notation, (ind, _v(r["excludes"]) == "true"))
        elif cls == BASE + "Interpretation":
            interpretations.setdefault(notation, ind)
        else:
            sexes.setdefault(notation, ind)
    frequencies: dict[tuple[int, Decimal, str], str] = {}
    per_unit: dict[str, tuple[int, Decimal]] = {}
    for r in _q(store, """
        SELECT DISTINCT ?f ?freq ?period ?unit ?interval WHERE {
          ?f a b12:Frequency ; b12:timingFrequency ?freq ; b12:timingPeriod ?period ; b12:timingPeriodUnit ?unit .
          OPTIONAL { ?f b12:intervalDays ?interval }
        } ORDER BY ?f"""):
        freq, period, unit = int(r["freq"].value), Decimal(r["period"].value), r["unit"].value
        frequencies.setdefault((freq, period.normalize(), unit), r["f"].value)
        if r["interval"] is not None:
            days = Decimal(r["interval"].value) * freq / period
            rank = (0 if (freq, period) == (1, 1) else 1 if freq == 1 else 2, period)
            if unit not in per_unit or rank < per_unit[unit][0]:
                per_unit[unit] = (rank, days)  # type: ignore[assignment]
    days_per_unit = {u: Decimal(str(round(d, 6))).normalize() for u, (_, d) in per_unit.items()}
    negative = frozenset(r["ind"].value for r in _q(store, """
        SELECT DISTINCT ?ind WHERE { ?ind skos:exactMatch <http://snomed.info/id/260385009> }"""))
    return Terminology(systems, concepts, drugs, routes, values, drug_labels, statuses,
                       interpretations, sexes, frequencies, days_per_unit, negative)


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


class _Bad(Exception):
    """Bad input: the file is not usable FHIR R4 here (exit 2 unless in an NDJSON file or a folder)."""


class _Skip(Exception):
    """The resource was read but gives no facts; the message is the reason."""


@dataclass
class Source:
    """One input to the importer: a FHIR JSON document or an NDJSON file."""

    path: str
    content: bytes
    ndjson: bool = False
    lenient: bool = False  # one bad record does not stop the others (NDJSON, folder)
    group: str | None = None  # the folder (or file) the 'nothing could be read' rule applies to
    parsed: object = None  # the JSON value, when the caller already parsed it


@dataclass
class _Res:
    rtype: str
    rid: str | None
    full_url: str | None
    data: dict
    path: str
    line: int | None
    lenient: bool
    group: str
    iri: str
    order: int
    contained: dict[str, dict] = field(default_factory=dict)
    parent: "_Res | None" = None

    @property
    def label(self) -> str:
        if self.rid:
            return f"{self.rtype}/{self.rid}"
        if self.full_url:
            return f"{self.rtype} {self.full_url}"
        return f"{self.rtype} (no id)"


def _file_iri(path: str) -> str:
    try:
        return Path(path).resolve().as_uri()
    except ValueError:
        return "urn:b12kg:file:" + quote(path, safe="/-._~")


# --------------------------------------------------------------------------------------------
# JSON helpers that check the structure of what is read
# --------------------------------------------------------------------------------------------


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "a boolean"
    return {str: "a string", int: "a number", Decimal: "a number", float: "a number", list: "an array",
            dict: "an object"}.get(type(v), type(v).__name__)


def _typed(d: dict, key: str, kind: type, noun: str, what: str, missing):
    """d[key] checked against the JSON type FHIR R4 gives it (one-line error otherwise)."""
    v = d.get(key)
    if v is None:
        return missing
    if not isinstance(v, kind):
        raise _Bad(f"not FHIR R4: '{what or key}' must be {noun}, not {_json_type(v)}")
    return v


def _obj(d: dict, key: str, what: str = "") -> dict | None:
    return _typed(d, key, dict, "a JSON object", what, None)


def _arr(d: dict, key: str, what: str = "") -> list:
    return _typed(d, key, list, "a JSON array", what, [])


def _str(d: dict, key: str, what: str = "") -> str | None:
    return _typed(d, key, str, "a string", what, None)


def _codings(cc: dict | None, what: str) -> list[tuple[str | None, str, str | None]]:
    """(system, code, display) of a CodeableConcept's codings."""
    if cc is None:
        return []
    if not isinstance(cc, dict):
        raise _Bad(f"not FHIR R4: '{what}' must be a CodeableConcept (a JSON object), not {_json_type(cc)}")
    out = []
    for i, c in enumerate(_arr(cc, "coding", f"{what}.coding")):
        if not isinstance(c, dict):
            raise _Bad(f"not FHIR R4: '{what}.coding[{i}]' must be a JSON object")
        code = _str(c, "code", f"{what}.coding.code")
        if code:
            out.append((_str(c, "system", f"{what}.coding.system"), code, _str(c, "display", f"{what}.coding.display")))
    return out


def _parse_date(value, what: str) -> tuple[dt.date | None, str]:
    """A FHIR date/dateTime/instant: (the date, or None when only year or year-month is given; text)."""
    if not isinstance(value, str):
        raise _Bad(f"not FHIR R4: '{what}' must be a date string, not {_json_type(value)}")
    m = _DATE.match(value)
    if not m:
        raise _Bad(f"{what} '{value}' is not a FHIR date or dateTime")
    y, mo, d = m["y"], m["m"], m["d"]
    try:
        if mo is not None:
            if not 1 <= int(mo) <= 12:
                raise ValueError
            if d is not None:
                day = dt.date(int(y), int(mo), int(d))
                if m["H"] is not None and (int(m["H"]) > 23 or int(m["M"]) > 59 or int(m["S"] or 0) > 60):
                    raise ValueError
                if m["tz"] and m["tz"] != "Z" and (int(m["tz"][1:3]) > 14 or int(m["tz"][4:6]) > 59):
                    raise ValueError
                return day, value
    except ValueError:
        raise _Bad(f"{what} '{value}' is an impossible date") from None
    return None, value


def _date_lit(d: dt.date) -> ox.Literal:
    return ox.Literal(d.isoformat(), datatype=_XSD_DATE)


#: A JSON number whose decimal exponent is beyond this is out of range: 1e99999999 is a few bytes
#: of JSON, but int() or format(…, "f") of it needs gigabytes (measured: a MemoryError from 4.5 KB).
MAX_EXPONENT = 100


def _num(value) -> Decimal | None:
    """The number, or None when ``value`` is not a number or is out of range (see _out_of_range)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
        return None
    d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return None if _out_of_range(d) else d


def _out_of_range(d: Decimal) -> bool:
    return not d.is_finite() or (d != 0 and abs(d.adjusted()) > MAX_EXPONENT)


def _number_problem(raw) -> str:
    """Why a JSON value that _num refused is not used: out of range, or not a number at all."""
    if isinstance(raw, (int, Decimal, float)) and not isinstance(raw, bool):
        return f"{_brief(raw)} is out of range (beyond 1e{MAX_EXPONENT})"
    return f"{_brief(raw)} is not a number"


def _num_lit(d: Decimal) -> ox.Literal:
    if d == d.to_integral_value() and d.as_tuple().exponent >= 0:
        return ox.Literal(str(int(d)), datatype=_XSD_INTEGER)
    return ox.Literal(format(d, "f"), datatype=_XSD_DECIMAL)


def _no_constants(name):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str):
    """json.loads keeping decimals exact; raises ValueError (json.JSONDecodeError, with the place) or
    RecursionError (nested deeper than Python's recursion limit, about 1,000 levels).

    A string with a lone surrogate escape (``"\\ud800"``) is valid JSON but not Unicode text: it
    could not be written to the report, so it is refused here like a syntax error."""
    value = json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    bad = lone_surrogate(text)
    if bad is not None:
        raise json.JSONDecodeError(bad[0], text, bad[1])
    return value


#: What a RecursionError from the json module means (Python's recursion limit, about 1,000 levels).
_TOO_DEEP = "nested too deeply (more than about 1,000 levels of arrays and objects)"


def _brief(value, limit: int = 80) -> str:
    """A JSON value for a one-line message: scalars as JSON (cut to ``limit`` characters), arrays
    and objects by their type only (they may be nested a thousand levels deep)."""
    if isinstance(value, (list, dict)):
        return f"({_json_type(value)})"
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------------------------


def _record_head(s: ox.NamedNode, concepts, codes, patient: str) -> list[ox.Triple]:
    """The triples every record starts with: its concept classes, its codes, its patient."""
    out = [ox.Triple(s, RDF_TYPE, ox.NamedNode(c.iri)) for c in concepts]
    out += [ox.Triple(s, b12("code"), ox.NamedNode(code)) for code in codes]
    out.append(ox.Triple(s, b12("subject"), ox.NamedNode(patient)))
    return out


class _Importer:
    def __init__(self, term: Terminology):
        self.t = term
        self.resources: list[_Res] = []
        self.by_key: dict[str, _Res] = {}
        self.by_url: dict[str, _Res] = {}
        self.by_iri: dict[str, _Res] = {}
        self.out: dict[int, list[ox.Triple]] = {}
        self.used: list[str] = []
        self.unused: list[UnusedInput] = []
        self.read = 0
        self.readable: dict[str, int] = {}
        self.first_problem: dict[str, tuple[str, str, int | None]] = {}
        self.groups: list[str] = []
        self.failed: set[str] = set()  # IRIs of resources that could not be read or used
        self.used_medications: set[str] = set()
        self.procedures: dict[str, _Res] = {}  # IRI of a used procedure -> resource
        self._order = 0

    # ---- collection ---------------------------------------------------------------------

    def _group(self, group: str) -> None:
        if group not in self.readable:
            self.readable[group] = 0
            self.groups.append(group)

    def _problem(self, group: str, path: str, line: int | None, resource: str, message: str, patient=None) -> None:
        """A bad record in lenient mode: listed as unused (file, line, why), processing goes on."""
        self.first_problem.setdefault(group, (path, message, line))
        where = Path(path).name + (f" line {line}" if line is not None else "")
        self.unused.append(UnusedInput(resource, f"{where}: {message}", patient))

    def add(self, src: Source) -> None:
        group = src.group or src.path
        self._group(group)
        try:
            text = src.content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self._fail_file(src, group, f"not UTF-8 text (byte {exc.start})")
            return
        if src.ndjson:
            self._add_ndjson(src, text, group)
            return
        value, src.parsed = src.parsed, None  # the importer keeps what it needs; the rest can be freed
        if value is None:
            try:
                value = parse_json(text)
            except json.JSONDecodeError as exc:
                self._fail_file(src, group, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)
                return
            except (ValueError, RecursionError) as exc:
                self._fail_file(src, group, f"invalid JSON: {exc if isinstance(exc, ValueError) else _TOO_DEEP}")
                return
        try:
            self._collect(value, src.path, None, src.lenient, group, None, where="")
        except _Bad as exc:
            self._fail_file(src, group, str(exc))

    def _fail_file(self, src: Source, group: str, message: str, line: int | None = None, col: int | None = None) -> None:
        if not src.lenient:
            raise InputError(src.path, message, line, col)
        self.read += 1
        self._problem(group, src.path, line, _file_iri(src.path), message)

    def _add_ndjson(self, src: Source, text: str, group: str) -> None:
        lines = text.split("\n")
        seen = False
        for n, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line:
                continue
            seen = True
            try:
                value = parse_json(line)
            except json.JSONDecodeError as exc:
                self._ndjson_bad(src, group, n, f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            except (ValueError, RecursionError) as exc:
                self._ndjson_bad(src, group, n, f"invalid JSON: {exc if isinstance(exc, ValueError) else _TOO_DEEP}")
                continue
            try:
                self._collect(value, src.path, n, True, group, None, where="")
            except _Bad as exc:
                self._ndjson_bad(src, group, n, str(exc), value)
        if not seen:
            self.first_problem.setdefault(group, (src.path, "empty NDJSON file: no resource", None))

    def _ndjson_bad(self, src: Source, group: str, n: int, message: str, value=None) -> None:
        self.read += 1
        resource = f"{_file_iri(src.path)}#line={n}"
        if isinstance(value, dict) and isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str) \
                and _FHIR_ID.match(value["id"]) and value["resourceType"] in R4_RESOURCE_TYPES:
            resource = f"urn:fhir:{value['resourceType']}/{value['id']}"
        self._problem(group, src.path, n, resource, message)

    def _collect(self, value, path: str, line: int | None, lenient: bool, group: str, full_url: str | None, where: str) -> None:
        if not isinstance(value, dict):
            raise _Bad(f"{where}not a FHIR R4 resource: a JSON {type(value).__name__}, not an object"
                       + (" (a file of many resources must be NDJSON, one per line)" if isinstance(value, list) else ""))
        rtype = value.get("resourceType")
        if rtype is None:
            raise _Bad(f"{where}not a FHIR R4 resource: no resourceType")
        if not isinstance(rtype, str) or rtype not in R4_RESOURCE_TYPES:
            raise _Bad(f"{where}not a FHIR R4 resource: unknown resourceType {_brief(rtype)}")
        rid = value.get("id")
        if rid is not None and (not isinstance(rid, str) or not _FHIR_ID.match(rid)):
            raise _Bad(f"{where}{rtype}: id {_brief(rid)} is not a valid FHIR id")
        if rtype == "Bundle":
            self._collect_bundle(value, path, line, lenient, group, where)
            return
        contained: dict[str, dict] = {}
        for i, c in enumerate(_arr(value, "contained", f"{rtype}.contained")):
            if not (isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("resourceType"), str)):
                raise _Bad(f"{where}{rtype}: contained[{i}] must be a resource with an id")
            contained[c["id"]] = c
        iri = self._iri(rtype, rid, full_url, path, line)
        res = _Res(rtype, rid, full_url, value, path, line, lenient, group, iri, self._order, contained)
        self._order += 1
        self.read += 1
        if iri in self.by_iri:
            self.unused.append(UnusedInput(iri, f"duplicate: {res.label} was already read from {Path(self.by_iri[iri].path).name}"))
            self.readable[group] += 1
            return
        self.resources.append(res)
        self.by_iri[iri] = res
        if rid:
            self.by_key.setdefault(f"{rtype}/{rid}", res)
        if full_url:
            self.by_url.setdefault(full_url, res)

    def _collect_bundle(self, bundle: dict, path: str, line: int | None, lenient: bool, group: str, where: str) -> None:
        label = f"Bundle/{bundle['id']}" if bundle.get("id") else "Bundle"
        entries = _arr(bundle, "entry", f"{label}.entry")
        for i, entry in enumerate(entries):
            here = f"{label} entry {i}: "
            try:
                if not isinstance(entry, dict):
                    raise _Bad(f"{here}must be a JSON object")
                resource = entry.get("resource")
                if resource is None:
                    request = entry.get("request")
                    method = request.get("method") if isinstance(request, dict) else None
                    if method == "DELETE" or "response" in entry:  # nothing to read, but listed
                        self.read += 1
                        what = "a DELETE request" if method == "DELETE" else "a response"
                        self._problem(group, path, line, f"{_file_iri(path)}#entry={i}",
                                      f"{here}{what} entry carries no resource: nothing to read")
                        continue
                    keys = ", ".join(sorted(entry)[:6])
                    raise _Bad(f"{here}has no 'resource'" + (f" (its keys: {keys})" if keys else " (an empty object)"))
                full_url = _str(entry, "fullUrl", "entry.fullUrl")
                if full_url is not None:
                    try:
                        ox.NamedNode(full_url)
                    except ValueError:
                        raise _Bad(f"{here}fullUrl '{full_url}' is not an absolute URI") from None
                self._collect(resource, path, line, lenient, group, full_url, where=here)
            except _Bad as exc:
                if not lenient:
                    raise
                self.read += 1
                rid = entry.get("resource", {}).get("id") if isinstance(entry, dict) and isinstance(entry.get("resource"), dict) else None
                rtype = entry.get("resource", {}).get("resourceType") if isinstance(entry, dict) and isinstance(entry.get("resource"), dict) else None
                resource = (f"urn:fhir:{rtype}/{rid}" if isinstance(rtype, str) and rtype in R4_RESOURCE_TYPES
                            and isinstance(rid, str) and _FHIR_ID.match(rid) else f"{_file_iri(path)}#entry={i}")
                self._problem(group, path, line, resource, str(exc))

    def _iri(self, rtype: str, rid: str | None, full_url: str | None, path: str, line: int | None) -> str:
        if full_url and re.match(r"^https?://", full_url):
            return full_url
        if rid:
            return f"urn:fhir:{rtype}/{rid}"
        if full_url:
            return full_url
        digest = hashlib.sha1(f"{Path(path).name}:{line}:{self._order}".encode()).hexdigest()[:12]
        return f"urn:b12kg:fhir:{rtype}:{digest}"

    # ---- references -------------------------------------------------------------------------

    def _resolve(self, res: _Res, ref_obj, what: str) -> _Res | None:
        if ref_obj is None:
            return None
        if not isinstance(ref_obj, dict):
            raise _Bad(f"not FHIR R4: '{what}' must be a Reference (JSON object)")
        ref = _str(ref_obj, "reference", f"{what}.reference")
        if ref is None:
            return None
        if ref.startswith("#"):
            holder = res.parent or res
            data = holder.contained.get(ref[1:])
            if data is None:
                raise _Bad(f"{what} reference '{ref}' points to no contained resource")
            rtype = data.get("resourceType")
            if not isinstance(rtype, str) or rtype not in R4_RESOURCE_TYPES:
                raise _Bad(f"contained '{ref[1:]}' is not a FHIR R4 resource")
            return _Res(rtype, ref[1:], None, data, holder.path, holder.line, holder.lenient, holder.group,
                        f"{holder.iri}#{ref[1:]}", holder.order, holder.contained, parent=holder)
        target = self.by_url.get(ref)
        if target is None:
            m = _REF_TAIL.search(ref)
            if m:
                target = self.by_key.get(f"{m['type']}/{m['id']}")
        if target is None:
            raise _Bad(f"{what} reference '{ref}' points to no resource in the input")
        return target

    def _patient(self, res: _Res, quiet: bool = False) -> str | None:
        """IRI of the record's patient; _Skip when the record is not linked to a usable Patient."""
        try:
            target = self._resolve(res, res.data.get("subject"), "subject")
        except _Bad:
            if quiet:
                return None
            raise
        if quiet:
            return target.iri if target is not None and target.rtype == "Patient" and target.iri not in self.failed else None
        if target is None:
            raise _Skip("no subject reference: the record is not linked to a patient")
        if target.rtype != "Patient":
            raise _Skip(f"subject is a {target.rtype}, not a Patient")
        if target.iri in self.failed:
            raise _Skip(f"its subject {target.label} could not be read")
        return target.iri

    # ---- codes ------------------------------------------------------------------------------

    def _concepts(self, cc: dict | None, what: str) -> tuple[list[Concept], list[str]]:
        """Concept classes of a CodeableConcept and the code IRIs it carries; _Skip when none map."""
        codings = _codings(cc, what)
        codes: list[str] = []
        concepts: list[Concept] = []
        unknown_systems = []
        for system, code, _ in codings:
            iri = self.t.code_iri(system, code)
            if iri is None:
                unknown_systems.append(f"{system or '(no system)'}|{code}")
                continue
            if iri not in codes:
                codes.append(iri)
            for c in self.t.concepts.get(iri, ()):
                if c not in concepts:
                    concepts.append(c)
        if concepts:
            return concepts, codes
        if codes:
            raise _Skip(f"unknown code <{'>, <'.join(codes)}>: no concept of the encoding matches it")
        if unknown_systems:
            raise _Skip(f"unknown code {', '.join(unknown_systems)}: not in a code system the encoding knows")
        text = cc.get("text") if isinstance(cc, dict) else None
        if isinstance(text, str) and text:
            raise _Skip(f"no coded {what}, only the text '{text}'")
        raise _Skip(f"no {what}")

    def _status(self, code: str | None) -> tuple[str | None, bool]:
        """(status individual or None, excludes the record)."""
        if code is None:
            return None, False
        hit = self.t.statuses.get(code)
        if hit is not None:
            return hit
        return None, False

    # ---- conversion -------------------------------------------------------------------------

    def run(self) -> None:
        order = {"Patient": 0, "Medication": 1, "Procedure": 2}
        for res in sorted(self.resources, key=lambda r: (order.get(r.rtype, 3), r.order)):
            self._convert(res)
        for res in self.resources:
            if res.rtype == "Medication" and res.iri not in self.failed:
                if res.iri in self.used_medications:
                    self.used.append(res.iri)
                else:
                    self.unused.append(UnusedInput(res.iri, "Medication not referenced by any medication record that was used"))
        for group in self.groups:
            if self.readable[group] == 0 and group in self.first_problem:
                path, message, line = self.first_problem[group]
                raise InputError(path, f"nothing could be read: {message}", line)

    def _convert(self, res: _Res) -> None:
        handler = {
            "Patient": self._conv_patient,
            "Observation": self._conv_observation,
            "Condition": self._conv_condition,
            "Procedure": self._conv_procedure,
            "MedicationStatement": self._conv_medication,
            "MedicationRequest": self._conv_medication,
            "MedicationAdministration": self._conv_medication,
            "Medication": self._conv_med_resource,
        }.get(res.rtype)
        triples: list[ox.Triple] = []
        notes: list[str] = []
        try:
            if handler is None:
                raise _Skip(f"resource type {res.rtype} is not read by the importer")
            handler(res, triples, notes)
        except _Bad as exc:
            self.failed.add(res.iri)
            self._bad_or_raise(res, str(exc))
            return
        except _Skip as exc:
            self.failed.add(res.iri)
            self.readable[res.group] += 1
            self.unused.append(UnusedInput(res.iri, str(exc), self._patient(res, quiet=True)))
            return
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError, RecursionError) as exc:
            # an element of a shape the checks above did not foresee: bad input, never a traceback
            self.failed.add(res.iri)
            self._bad_or_raise(res, "cannot be read (nested too deeply)" if isinstance(exc, RecursionError)
                               else f"cannot be read ({type(exc).__name__}: {exc})")
            return
        self.readable[res.group] += 1
        if res.rtype == "Medication":
            return  # used or not depending on the records that reference it
        self.used.append(res.iri)
        self.out.setdefault(res.order, []).extend(triples)
        patient = res.iri if res.rtype == "Patient" else self._patient(res, quiet=True)
        for n in notes:
            self.unused.append(UnusedInput(res.iri, n, patient, note=True))

    def _bad_or_raise(self, res: _Res, message: str) -> None:
        if not res.lenient:
            raise InputError(res.path, f"{res.label}: {message}", res.line)
        self.failed.add(res.iri)
        patient = None
        try:
            patient = self._patient(res, quiet=True)
        except _Bad:
            pass
        self._problem(res.group, res.path, res.line, res.iri, f"{res.label}: {message}", patient)

    def _conv_med_resource(self, res, triples, notes):
        _codings(_obj(res.data, "code"), "code")  # structure check only; read through references

    def _conv_patient(self, res: _Res, t: list, notes: list) -> None:
        s = ox.NamedNode(res.iri)
        t.append(ox.Triple(s, RDF_TYPE, b12("Patient")))
        gender = _str(res.data, "gender")
        if gender is not None:
            sex = self.t.sexes.get(gender)
            if sex:
                t.append(ox.Triple(s, b12("sex"), ox.NamedNode(sex)))
            else:
                notes.append(f"gender '{gender}' not recognised; sex not used")
        if res.data.get("birthDate") is not None:
            day, text = _parse_date(res.data["birthDate"], "birthDate")
            if day is None:
                notes.append(f"birthDate '{text}' is not a full date; not used")
            else:
                t.append(ox.Triple(s, b12("birthDate"), _date_lit(day)))

    # Observation ---------------------------------------------------------------------------

    def _effective(self, res: _Res, notes: list, what="effective") -> dt.date | None:
        d = res.data
        for key in (f"{what}DateTime", f"{what}Instant"):
            if d.get(key) is not None:
                day, text = _parse_date(d[key], key)
                if day is None:
                    raise _Skip(f"{key} '{text}' is not a full date")
                return day
        period = _obj(d, f"{what}Period")
        if period is not None:
            for key in ("start", "end"):
                if period.get(key) is not None:
                    day, text = _parse_date(period[key], f"{what}Period.{key}")
                    if day is None:
                        raise _Skip(f"{what}Period.{key} '{text}' is not a full date")
                    return day
        if what == "effective" and d.get("issued") is not None:
            day, _ = _parse_date(d["issued"], "issued")
            if day is not None:
                notes.append("no effective date; the date issued is used")
                return day
        return None

    def _quantity(self, q, what: str) -> tuple[Decimal, str]:
        """(value, UCUM unit) of a Quantity; _Skip when it has no number or no unit."""
        if not isinstance(q, dict):
            raise _Bad(f"not FHIR R4: '{what}' must be a Quantity (JSON object)")
        raw = q.get("value")
        value = _num(raw)
        if value is None:
            if raw is None:
                raise _Skip(f"{what} has no value")
            raise _Skip(f"{what} value {_number_problem(raw)}")
        comparator = q.get("comparator")
        if comparator is not None:
            raise _Skip(f"{what} is '{comparator}{format(value, 'f')}', not an exact value")
        system = q.get("system")
        unit = None
        if isinstance(q.get("code"), str) and q["code"] and system in (None, _UCUM):
            unit = q["code"]
        elif isinstance(q.get("unit"), str) and q["unit"]:
            unit = q["unit"]  # the human-readable unit: converted if it happens to be UCUM, else reported
        if unit is None:
            raise _Skip(f"{what} {format(value, 'f')} has no UCUM code or unit")
        return value, unit

    def _conv_observation(self, res: _Res, t: list, notes: list) -> None:
        d = res.data
        status = _str(d, "status")
        ind, excludes = self._status(status)
        if excludes:
            raise _Skip(f"status '{status}': not used as a fact")
        patient = self._patient(res)
        concepts, codes = self._concepts(_obj(d, "code"), "code")
        labs = [c for c in concepts if c.lab]
        length = [c for c in concepts if c.iri == BASE + "IlealResectionLength"]
        s = ox.NamedNode(res.iri)
        if length:
            self._resection_length(res, t, notes, patient, codes, length)
            return
        day = self._effective(res, notes)
        if labs:
            if day is None:
                raise _Skip("lab result without a date (effectiveDateTime, effectivePeriod or issued)")
            self._lab(res, t, notes, labs, codes, patient, day)
            return
        # a finding, risk state, diet, guideline observation ... dated by the observation
        if d.get("valueBoolean") is False:
            raise _Skip("valueBoolean false: the observation records the finding as absent")
        value_cc = _obj(d, "valueCodeableConcept")
        if value_cc is not None:
            vals = [self.t.values.get(self.t.code_iri(sy, co) or "") for sy, co, _ in _codings(value_cc, "valueCodeableConcept")]
            if any(v in self.t.negative for v in vals if v):
                raise _Skip("valueCodeableConcept says negative: the observation records the finding as absent")
        for key in d:
            if key.startswith("value") and key != "valueBoolean":
                notes.append(f"{key} not used: the concept is recorded as present, without a value")
        if day is None:
            raise _Skip("observation without a date (effectiveDateTime or effectivePeriod)")
        t += _record_head(s, concepts, codes, patient)
        t.append(ox.Triple(s, b12("date"), _date_lit(day)))
        if not any(c.coded_observation or c.procedure for c in concepts):
            t.append(ox.Triple(s, b12("onset"), _date_lit(day)))

    def _lab(self, res, t, notes, labs, codes, patient, day) -> None:
        d = res.data
        s = ox.NamedNode(res.iri)
        facts: list[ox.Triple] = []
        unit = None
        if d.get("valueQuantity") is not None:
            value, unit = self._quantity(d["valueQuantity"], "valueQuantity")
            facts += [ox.Triple(s, b12("value"), _num_lit(value)), ox.Triple(s, b12("unit"), ox.Literal(unit))]
        elif d.get("valueCodeableConcept") is not None:
            found = None
            cods = _codings(_obj(d, "valueCodeableConcept"), "valueCodeableConcept")
            for sy, co, _ in cods:
                iri = self.t.code_iri(sy, co)
                if iri and iri in self.t.values:
                    found = self.t.values[iri]
                    break
            if found is None:
                shown = ", ".join(f"{sy or ''}|{co}" for sy, co, _ in cods) or "no code"
                raise _Skip(f"coded value ({shown}) is not one the encoding knows")
            facts.append(ox.Triple(s, b12("resultValue"), ox.NamedNode(found)))
        else:
            other = [k for k in d if k.startswith("value")]
            if other:
                raw = d[other[0]]
                if isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
                    raise _Skip(f"{other[0]} {_brief(raw)} has no UCUM unit")
                raise _Skip(f"{other[0]} {_brief(raw)} is not a number with a unit or a coded value")
        flags = []
        for i, cc in enumerate(_arr(d, "interpretation")):
            for _, code, _ in _codings(cc, f"interpretation[{i}]"):
                flag = self.t.interpretations.get(code)
                if flag:
                    flags.append(flag)
                else:
                    notes.append(f"interpretation '{code}' not recognised; not used")
        if flags:
            facts.append(ox.Triple(s, b12("interpretation"), ox.NamedNode(flags[0])))
        if not facts:
            absent = _obj(d, "dataAbsentReason")
            why = ""
            if absent is not None:
                cods = _codings(absent, "dataAbsentReason")
                why = f" (dataAbsentReason '{cods[0][1] if cods else absent.get('text', '')}')"
            raise _Skip(f"lab result without a value{why}")
        needs_number = [c for c in labs if c.canonical_unit]
        if needs_number and unit is None:
            raise _Skip(f"lab result without a numeric value: <{needs_number[0].iri}> is compared in {needs_number[0].canonical_unit}")
        for c in labs:
            t.append(ox.Triple(s, RDF_TYPE, ox.NamedNode(c.iri)))
        for code in codes:
            t.append(ox.Triple(s, b12("code"), ox.NamedNode(code)))
        t.append(ox.Triple(s, b12("subject"), ox.NamedNode(patient)))
        t.extend(facts)
        t.append(ox.Triple(s, b12("date"), _date_lit(day)))
        self._reference_range(res, t, notes, unit)

    def _reference_range(self, res, t, notes, unit) -> None:
        s = ox.NamedNode(res.iri)
        for i, rr in enumerate(_arr(res.data, "referenceRange")):
            if not isinstance(rr, dict):
                raise _Bad(f"not FHIR R4: 'referenceRange[{i}]' must be a JSON object")
            got = False
            for key, prop in (("low", "referenceLow"), ("high", "referenceHigh")):
                q = _obj(rr, key, f"referenceRange[{i}].{key}")
                if q is None:
                    continue
                value = _num(q.get("value"))
                if value is None:
                    notes.append(f"referenceRange.{key} has no numeric value; not used")
                    continue
                q_unit = q.get("code") or q.get("unit")
                if q_unit and unit and q_unit != unit:
                    try:
                        value = units.convert(value, q_unit, unit)
                    except units.UnitError as exc:
                        notes.append(f"referenceRange.{key} not used: {exc}")
                        continue
                elif q_unit and not unit:
                    notes.append(f"referenceRange.{key} not used: the result has no numeric value")
                    continue
                t.append(ox.Triple(s, b12(prop), _num_lit(value)))
                got = True
            if got:
                if i + 1 < len(_arr(res.data, "referenceRange")):
                    notes.append("only the first reference range is used")
                return

    def _resection_length(self, res, t, notes, patient, codes, concepts) -> None:
        d = res.data
        procedure = None
        for i, ref in enumerate(_arr(d, "partOf")):
            target = self._resolve(res, ref, f"partOf[{i}]")
            if target is not None and target.rtype == "Procedure":
                procedure = target
                break
        if procedure is None:
            raise _Skip("length of ileum resected without partOf a Procedure: not attached to a resection")
        if procedure.iri not in self.procedures:
            raise _Skip(f"partOf {procedure.label}, which is not used")
        if d.get("valueQuantity") is None:
            raise _Skip("length of ileum resected without valueQuantity")
        value, unit = self._quantity(d["valueQuantity"], "valueQuantity")
        try:
            cm = units.convert(value, unit, "cm")
        except units.UnitError as exc:
            raise _Skip(f"length not used: {exc}") from None
        day = self._effective(res, notes)
        s = ox.NamedNode(res.iri)
        t += _record_head(s, concepts, codes, patient)
        t += [ox.Triple(s, b12("value"), _num_lit(value)), ox.Triple(s, b12("unit"), ox.Literal(unit))]
        if day is not None:
            t.append(ox.Triple(s, b12("date"), _date_lit(day)))
        proc = ox.NamedNode(procedure.iri)
        self.out.setdefault(procedure.order, []).extend([
            ox.Triple(proc, b12("resectedLengthCm"), _num_lit(cm)),
            ox.Triple(proc, prov("wasDerivedFrom"), s),
        ])

    # Condition / Procedure ------------------------------------------------------------------

    def _conv_condition(self, res: _Res, t: list, notes: list) -> None:
        d = res.data
        clinical = [c for _, c, _ in _codings(_obj(d, "clinicalStatus"), "clinicalStatus")]
        verification = [c for _, c, _ in _codings(_obj(d, "verificationStatus"), "verificationStatus")]
        for what, codes in (("verificationStatus", verification), ("clinicalStatus", clinical)):
            for code in codes:
                if self._status(code)[1]:
                    raise _Skip(f"{what} '{code}': not used as a fact")
        patient = self._patient(res)
        concepts, codes = self._concepts(_obj(d, "code"), "code")
        if all(c.lab for c in concepts):
            raise _Skip(f"code <{codes[0]}> names a lab test, not a condition")
        concepts = [c for c in concepts if not c.lab]
        onset = None
        if d.get("onsetDateTime") is not None:
            onset, text = _parse_date(d["onsetDateTime"], "onsetDateTime")
            if onset is None:
                notes.append(f"onsetDateTime '{text}' is not a full date; onset not used")
        elif _obj(d, "onsetPeriod") is not None and d["onsetPeriod"].get("start") is not None:
            onset, text = _parse_date(d["onsetPeriod"]["start"], "onsetPeriod.start")
            if onset is None:
                notes.append(f"onsetPeriod.start '{text}' is not a full date; onset not used")
        else:
            other = [k for k in d if k.startswith("onset")]
            if other:
                notes.append(f"{other[0]} not used (give onsetDateTime)")
            if d.get("recordedDate") is not None:
                onset, _ = _parse_date(d["recordedDate"], "recordedDate")
                if onset is not None:
                    notes.append("no onset; the recorded date is used as onset")
        s = ox.NamedNode(res.iri)
        t += _record_head(s, concepts, codes, patient)
        if onset is not None:
            t.append(ox.Triple(s, b12("onset"), _date_lit(onset)))
            if any(c.coded_observation or c.procedure for c in concepts):
                t.append(ox.Triple(s, b12("date"), _date_lit(onset)))
        for what, codes_ in (("clinicalStatus", clinical), ("verificationStatus", verification)):
            for code in codes_:
                ind, _ = self._status(code)
                if ind:
                    t.append(ox.Triple(s, b12(what), ox.NamedNode(ind)))
                else:
                    notes.append(f"{what} '{code}' not recognised; not used")
        if d.get("abatementDateTime") is not None:
            _parse_date(d["abatementDateTime"], "abatementDateTime")

    def _conv_procedure(self, res: _Res, t: list, notes: list) -> None:
        d = res.data
        status = _str(d, "status")
        if self._status(status)[1]:
            raise _Skip(f"status '{status}': not used as a fact")
        patient = self._patient(res)
        concepts, codes = self._concepts(_obj(d, "code"), "code")
        if all(c.lab for c in concepts):
            raise _Skip(f"code <{codes[0]}> names a lab test, not a procedure")
        concepts = [c for c in concepts if not c.lab]
        day = self._effective(res, notes, what="performed")
        s = ox.NamedNode(res.iri)
        t += _record_head(s, concepts, codes, patient)
        if day is not None:
            t.append(ox.Triple(s, b12("date"), _date_lit(day)))
        else:
            notes.append("no performed date")
        for i, ext in enumerate(_arr(d, "extension")):
            if isinstance(ext, dict) and ext.get("url") == RESECTED_LENGTH_EXTENSION:
                try:
                    value, unit = self._quantity(ext.get("valueQuantity"), "extension resected-length valueQuantity")
                    t.append(ox.Triple(s, b12("resectedLengthCm"), _num_lit(units.convert(value, unit, "cm"))))
                except (_Skip, units.UnitError) as exc:
                    notes.append(f"resected length not used: {exc}")
        self.procedures[res.iri] = res

    # Medication use -------------------------------------------------------------------------

    def _drugs(self, res: _Res, notes: list) -> tuple[list[str], list[str], list[str]]:
        """(drug individuals, code IRIs, IRIs of Medication resources used)."""
        d = res.data
        cc = _obj(d, "medicationCodeableConcept")
        meds: list[str] = []
        ingredients: list = []
        med_text = None
        if cc is None:
            ref = d.get("medicationReference")
            if ref is None:
                raise _Skip("no medication (medicationCodeableConcept or medicationReference)")
            med = self._resolve(res, ref, "medicationReference")
            if med is None:
                raise _Skip("medicationReference without a reference")
            if med.rtype != "Medication":
                raise _Skip(f"medicationReference is a {med.rtype}, not a Medication")
            if med.iri in self.failed:
                raise _Skip(f"its {med.label} could not be read")
            cc = _obj(med.data, "code") or {}
            ingredients = _arr(med.data, "ingredient")
            meds.append(med.iri)
            med_text = med.data.get("code", {}).get("text") if isinstance(med.data.get("code"), dict) else None
        codings = _codings(cc, "medication")
        drugs: list[str] = []
        codes: list[str] = []
        for system, code, _ in codings:
            iri = self.t.code_iri(system, code)
            if iri is None:
                continue
            codes.append(iri)
            for drug in self.t.drugs.get(iri, ()):
                if drug not in drugs and not drugs:
                    drugs.append(drug)
                elif drug not in drugs:
                    notes.append(f"code <{iri}> names another drug (<{drug}>); the first coding is used")
        if not drugs and ingredients:
            for i, ing in enumerate(ingredients):
                if not isinstance(ing, dict):
                    raise _Bad(f"not FHIR R4: 'ingredient[{i}]' must be a JSON object")
                for system, code, _ in _codings(_obj(ing, "itemCodeableConcept"), f"ingredient[{i}].itemCodeableConcept"):
                    iri = self.t.code_iri(system, code)
                    for drug in self.t.drugs.get(iri or "", ()):
                        if drug not in drugs:
                            drugs.append(drug)
            if drugs:
                notes.append("drug taken from the Medication's ingredients")
        if not drugs:
            texts = [disp for _, _, disp in codings if disp] + [x for x in (cc.get("text"), med_text) if isinstance(x, str) and x]
            for text in texts:
                norm = " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "
                hits = {drug for label, drug in self.t.drug_labels.items() if f" {label} " in norm}
                if len(hits) == 1:
                    drugs = [hits.pop()]
                    shown = ", ".join(f"<{c}>" for c in codes) or "no known code"
                    notes.append(f"drug matched by display text '{text}' to <{drugs[0]}> ({shown} is not a code of the encoding)")
                    break
                if len(hits) > 1:
                    raise _Skip(f"display text '{text}' names more than one drug; not used")
        if not drugs:
            shown = ", ".join(f"<{c}>" for c in codes) or ", ".join(f"{sy}|{co}" for sy, co, _ in codings) or "no code"
            raise _Skip(f"unknown drug ({shown}): no drug of the encoding matches it")
        return drugs, codes, meds

    def _timing(self, rec: ox.NamedNode, dosage: dict, t: list, notes: list) -> tuple[str | None, dt.date | None, dt.date | None]:
        """Frequency of a Dosage ('once' or an individual IRI, or a node written to t) and its bounds."""
        timing = _obj(dosage, "timing", "dosage.timing")
        if timing is None:
            return None, None, None
        if timing.get("code") is not None and _obj(timing, "repeat", "timing.repeat") is None:
            cods = _codings(_obj(timing, "code", "timing.code"), "timing.code")
            notes.append(f"timing code '{cods[0][1] if cods else ''}' not used (give timing.repeat)")
        repeat = _obj(timing, "repeat", "timing.repeat") or {}
        start = end = None
        bounds = _obj(repeat, "boundsPeriod", "timing.repeat.boundsPeriod")
        if bounds is not None:
            if bounds.get("start") is not None:
                start = _parse_date(bounds["start"], "boundsPeriod.start")[0]
            if bounds.get("end") is not None:
                end = _parse_date(bounds["end"], "boundsPeriod.end")[0]
        count = repeat.get("count")
        if count is not None and _num(count) is None:
            raise _Bad("'timing.repeat.count' must be an integer")
        if count == 1:
            return BASE + "once", start, end
        freq = repeat.get("frequency")
        period = _num(repeat.get("period"))
        unit = repeat.get("periodUnit")
        if freq is None and isinstance(repeat.get("dayOfWeek"), list) and repeat["dayOfWeek"]:
            freq = len(repeat["dayOfWeek"])
            period, unit = period or Decimal(1), unit or "wk"
        if freq is None and period is not None:
            freq = 1
        if freq is None and period is None:
            if repeat:
                notes.append("timing.repeat has no frequency or period; frequency not used")
            return None, start, end
        if _num(freq) is None or period is None or not isinstance(unit, str) or period <= 0 or int(freq) <= 0:
            notes.append("timing.repeat needs frequency, period and periodUnit; frequency not used")
            return None, start, end
        freq = int(freq)
        hit = self.t.frequencies.get((freq, period.normalize(), unit))
        if hit:
            return hit, start, end
        days = self.t.period_days(unit)
        if days is None:
            notes.append(f"timing.repeat.periodUnit '{unit}' not understood; frequency not used")
            return None, start, end
        interval = (period * days / freq).quantize(Decimal("0.000001")).normalize()
        node = ox.NamedNode(rec.value + "/frequency")
        t += [
            ox.Triple(node, RDF_TYPE, b12("Frequency")),
            ox.Triple(node, b12("intervalDays"), ox.Literal(format(interval, "f"), datatype=_XSD_DECIMAL)),
            ox.Triple(node, b12("timingFrequency"), ox.Literal(str(freq), datatype=_XSD_INTEGER)),
            ox.Triple(node, b12("timingPeriod"), ox.Literal(format(period, "f"), datatype=_XSD_DECIMAL)),
            ox.Triple(node, b12("timingPeriodUnit"), ox.Literal(unit)),
        ]
        return node.value, start, end

    def _dose(self, rec: ox.NamedNode, dosage: dict, t: list, notes: list, single: bool) -> None:
        q = None
        if single:
            q = dosage.get("dose")
        else:
            for i, dr in enumerate(_arr(dosage, "doseAndRate", "dosage.doseAndRate")):
                if not isinstance(dr, dict):
                    raise _Bad(f"not FHIR R4: 'doseAndRate[{i}]' must be a JSON object")
                if dr.get("doseQuantity") is not None:
                    q = dr["doseQuantity"]
                    break
                if dr.get("doseRange") is not None:
                    notes.append("doseRange not used (give doseQuantity)")
        if q is None:
            return
        try:
            value, unit = self._quantity(q, "dose")
        except _Skip as exc:
            notes.append(f"{exc}; dose not used")
            return
        t += [ox.Triple(rec, b12("dose"), _num_lit(value)), ox.Triple(rec, b12("doseUnit"), ox.Literal(unit))]

    def _route(self, rec: ox.NamedNode, dosage: dict, t: list, notes: list) -> None:
        cods = _codings(_obj(dosage, "route", "dosage.route"), "dosage.route")
        for system, code, _ in cods:
            route = self.t.routes.get(self.t.code_iri(system, code) or "")
            if route:
                t.append(ox.Triple(rec, b12("route"), ox.NamedNode(route)))
                return
        if cods:
            notes.append(f"route {', '.join(f'{sy}|{co}' for sy, co, _ in cods)} not recognised; not used")

    def _conv_medication(self, res: _Res, t: list, notes: list) -> None:
        d = res.data
        rt = res.rtype
        status = _str(d, "status")
        status_ind, excludes = self._status(status)
        if excludes:
            raise _Skip(f"status '{status}': not used as a fact")
        if rt == "MedicationRequest" and d.get("doNotPerform") is True:
            raise _Skip("doNotPerform: the request is not to give the medication")
        patient = self._patient(res)
        drugs, codes, meds = self._drugs(res, notes)
        # period of use
        start = end = None
        single_day = False
        if rt in ("MedicationStatement", "MedicationAdministration"):
            if d.get("effectiveDateTime") is not None:
                start, text = _parse_date(d["effectiveDateTime"], "effectiveDateTime")
                if start is None:
                    notes.append(f"effectiveDateTime '{text}' is not a full date; not used")
                # a point in time is one dose for an administration or a completed statement; an
                # active statement dated by a point in time is an ongoing use that started then
                single_day = rt == "MedicationAdministration" or status == "completed"
            elif _obj(d, "effectivePeriod") is not None:
                p = d["effectivePeriod"]
                if p.get("start") is not None:
                    start, text = _parse_date(p["start"], "effectivePeriod.start")
                    if start is None:
                        notes.append(f"effectivePeriod.start '{text}' is not a full date; not used")
                if p.get("end") is not None:
                    end, text = _parse_date(p["end"], "effectivePeriod.end")
                    if end is None:
                        notes.append(f"effectivePeriod.end '{text}' is not a full date; not used")
            else:
                notes.append("no effective date: start of use unknown")
        else:
            validity = _obj(_obj(d, "dispenseRequest") or {}, "validityPeriod", "dispenseRequest.validityPeriod")
            if validity and validity.get("start") is not None:
                start = _parse_date(validity["start"], "validityPeriod.start")[0]
                if validity.get("end") is not None:
                    end = _parse_date(validity["end"], "validityPeriod.end")[0]
            elif d.get("authoredOn") is not None:
                start = _parse_date(d["authoredOn"], "authoredOn")[0]
        if status and not status_ind:
            notes.append(f"status '{status}' has no b12 status; not used")
        if rt == "MedicationAdministration":
            dosage = _obj(d, "dosage")
            dosages = [dosage] if dosage is not None else [None]
        else:
            dosages = _arr(d, "dosage" if rt == "MedicationStatement" else "dosageInstruction") or [None]
        for i, dosage in enumerate(dosages):
            if dosage is not None and not isinstance(dosage, dict):
                raise _Bad(f"not FHIR R4: 'dosage[{i}]' must be a JSON object")
            rec = ox.NamedNode(res.iri if len(dosages) == 1 else f"{res.iri}/dosage/{i + 1}")
            rt_triples: list[ox.Triple] = [ox.Triple(rec, RDF_TYPE, b12("MedicationUse")),
                                           ox.Triple(rec, b12("subject"), ox.NamedNode(patient))]
            rt_triples += [ox.Triple(rec, b12("drug"), ox.NamedNode(x)) for x in drugs]
            rt_triples += [ox.Triple(rec, b12("code"), ox.NamedNode(c)) for c in codes]
            freq = None
            b_start = b_end = None
            if dosage is not None:
                self._dose(rec, dosage, rt_triples, notes, single=(rt == "MedicationAdministration"))
                self._route(rec, dosage, rt_triples, notes)
                if rt != "MedicationAdministration":
                    freq, b_start, b_end = self._timing(rec, dosage, rt_triples, notes)
            s0, e0 = b_start or start, b_end or end
            if rt == "MedicationAdministration":
                freq = BASE + "once"
                e0 = e0 or s0
            elif freq is None and s0 is not None and (single_day or (e0 == s0 and status == "completed")):
                freq = BASE + "once"
                e0 = e0 or s0
            elif freq == BASE + "once" and e0 is None:
                e0 = s0
            if freq:
                rt_triples.append(ox.Triple(rec, b12("frequency"), ox.NamedNode(freq)))
            if s0 is not None:
                rt_triples.append(ox.Triple(rec, b12("startDate"), _date_lit(s0)))
            if e0 is not None:
                rt_triples.append(ox.Triple(rec, b12("endDate"), _date_lit(e0)))
            if status_ind:
                rt_triples.append(ox.Triple(rec, b12("status"), ox.NamedNode(status_ind)))
            if rec.value != res.iri:
                rt_triples.append(ox.Triple(rec, prov("wasDerivedFrom"), ox.NamedNode(res.iri)))
            rt_triples += [ox.Triple(rec, prov("wasDerivedFrom"), ox.NamedNode(m)) for m in meds]
            t.extend(rt_triples)
        self.used_medications.update(meds)

    # ---- result -----------------------------------------------------------------------------

    def release(self) -> None:
        """Drop the parsed JSON once every resource is converted: only types and order are needed
        after that, and a 100,000-entry bundle's JSON takes hundreds of MB."""
        for res in self.resources:
            res.data = {}
            res.contained = {}

    def result(self) -> PatientData:
        """The facts as data-graph quads: patients first, then the records in input order, grouped by
        subject in order of first appearance (readable Turtle), duplicates dropped. Each record's
        triples are released as they become quads, so the two are never all held at once."""
        patients_first = {r.order: (0 if r.rtype == "Patient" else 1, r.order) for r in self.resources}
        by_subject: dict[str, list[ox.Quad]] = {}
        seen: set[ox.Quad] = set()
        for order in sorted(self.out, key=lambda o: patients_first.get(o, (1, o))):
            for tr in self.out.pop(order):
                subject = tr.subject
                quad = ox.Quad(subject, tr.predicate, tr.object, G_DATA)
                if quad in seen:
                    continue
                seen.add(quad)
                by_subject.setdefault(subject.value, []).append(quad)
        seen.clear()
        quads = [q for lst in by_subject.values() for q in lst]
        data = PatientData(quads=quads, unused=list(self.unused), resources_read=self.read, used=list(self.used))
        return data


def read_fhir(sources: list[Source], kb=None, readable_groups: set[str] | None = None) -> PatientData:
    """Convert FHIR sources (read together, so references resolve across them) into patient data.

    ``readable_groups``: folders from which something (an RDF file) was already read, so they do
    not fail when none of their FHIR records can be read."""
    if kb is None:
        from .api import default_kb

        kb = default_kb()
    imp = _Importer(terminology(kb))
    for group in readable_groups or ():
        imp._group(group)
        imp.readable[group] += 1
    for src in sources:
        imp.add(src)
    imp.run()
    imp.release()
    data = imp.result()
    data.sources = [s.path for s in sources]
    return data


def looks_like_fhir_json(value) -> bool:
    """A parsed JSON value that should be read as FHIR (not JSON-LD)."""
    if isinstance(value, dict):
        if "resourceType" in value:
            return True
        return not any(isinstance(k, str) and k.startswith("@") for k in value)
    if isinstance(value, list):
        return not any(isinstance(x, dict) and any(isinstance(k, str) and k.startswith("@") for k in x) for x in value)
    return True
