"""Synthetic cohort generator: plausible patients for the B12 guideline, as Turtle, N-Triples or
FHIR R4 Bulk Data NDJSON (``b12kg synth``).

Every patient is generated from its own random stream (``random.Random("b12kg-synth:<seed>:<n>")``),
so the same seed gives the same bytes, any patient can be regenerated alone, and the cohort is
written patient by patient: nothing but the current patient is held in memory. All dates are
measured back from the as-of date (default 2026-06-01) and none lies after it.

Patient ``n`` of seed ``s`` is ``https://example.org/b12kg/synth/s<s>/p<n>`` in RDF and
``Patient/s<s>-p<n>`` in FHIR (the reasoner names it ``urn:fhir:Patient/s<s>-p<n>``); its records are
``…/p<n>-<what>-<k>``. The RDF is the README's patient vocabulary; about one record in eight names
its concept, drug or route by a standard code (``b12:code sct:…``, ``b12:drug rxnorm:…``) instead of
an ontology class or individual, as real data does. The FHIR output uses the codes of
``docs/guideline/TERMINOLOGY.md`` and the shapes the importer documents (``reasoner/fhir.py``); every
resource it writes is read and used by the importer (none is listed as unused).

Distributions (natural stratum; probabilities per patient unless said otherwise)
---------------------------------------------------------------------------------

Demographics
    age 18-95, ``18 + 77 * Beta(2.2, 1.6)`` (skewed older, mean about 62); sex female 52 %,
    male 47.5 %, other 0.3 %, unknown 0.2 %.
Diabetes and metformin
    type 2 diabetes ``0.10 + 0.34 * (age - 18) / 77`` (about 30 % overall); 85 % of diabetics take
    metformin 500-1000 mg daily, started 0-4 months ago in 15 % (not yet a risk factor), otherwise
    4 months to 20 years ago; 8 % of metformin courses are stopped. HbA1c on record for 90 % of
    diabetics (30 % of others), fasting glucose for 30 % / 10 %; diabetic peripheral neuropathy
    in 22 % of diabetics.
Proton pump inhibitors
    ``0.08 + 0.16 * (age - 18) / 77`` (about 17 %): omeprazole, pantoprazole, esomeprazole or
    lansoprazole daily; 30 % started within the last 12 months.
Diet and pregnancy
    vegan 2 %, vegetarian 4 % (x1.5 under 40); women 18-45: pregnant 7 %, breastfeeding 3 %;
    65 % of pregnant women take folic acid 0.4 mg (10 % of them 5 mg).
Malabsorption (about 4 %)
    pernicious anaemia 2 % over 50 (x1.5 in women), 0.5 % under; gastrectomy 0.6 %; ileal
    resection 0.6 %, length 5-60 cm (uniform), given as ``b12:resectedLengthCm`` (FHIR: an
    Observation ``partOf`` the Procedure, or the Procedure extension); Crohn's disease of the
    ileum 0.8 % (30 % of them with a resection); Crohn's disease elsewhere 0.3 %; malabsorption
    syndrome 0.3 %; small-bowel resection 0.2 %.
Kidneys
    true eGFR ``N(110 - 0.7 * (age - 18) - 8 * diabetes, 15)`` clipped to 5-130 mL/min/1.73 m²
    (below 60 in about 21 %, mostly the old), measured in 55 % (creatinine in 40 %); a chronic kidney disease
    diagnosis (generic or staged SNOMED code) in half of those below 60.
Other conditions
    hypothyroidism 4 % (x2 in women); HIV 0.4 %, hepatitis B 0.5 %, hepatitis C 0.8 %; MGUS 3 %
    over 50 (0.5 % under), multiple myeloma 0.5 % over 50, 60 % of myeloma patients on
    bortezomib (current or ended) and 45 % of those with chemotherapy-induced neuropathy;
    anticoagulant (warfarin, apixaban) 10 % over 65, 2 % under; needle phobia 1.5 %; vitamin C
    3 % (500 mg, 1 g or 2 g daily); thiamine deficiency 0.4 %, 35 % of them on oral or IV glucose.
B12 status (latent)
    true total B12 is log-normal, median ``420 ng/L x risk multipliers`` (metformin > 4 months
    0.75, PPI > 12 months 0.85, vegan 0.5, vegetarian 0.75, pernicious anaemia 0.3, gastrectomy
    0.4, ileal resection > 20 cm 0.5 (else 0.8), Crohn's ileum 0.7, malabsorption syndrome 0.6,
    small-bowel resection 0.7, age over 75 0.9), sigma 0.42. As the reasoner categorises the
    latest results (seed 1, 2,000 patients): about 13 % deficient, 40 % indeterminate and 46 %
    unlikely among patients with a B12 result (treated patients' later results are mostly normal).
Neurological findings
    probability ``0.08 + 0.10 * (age - 18) / 77``, + 0.12 with diabetes, + 0.35 when true B12
    < 180, + 0.12 when 180-350 (about 30 % overall); 1-3 findings from paraesthesia, numbness,
    peripheral neuropathy, neuropathy, polyneuropathy, loss of vibration sense, abnormal reflexes,
    muscle weakness, ataxia / gait disturbance, cognitive dysfunction, demyelination, myelopathy,
    subacute combined degeneration (only with low B12); onset ``1 + Exp(mean 150 days)`` ago,
    capped at 10 years (about half more than 3 months ago), or, in 85 % of the patients treated
    because they needed it, ``1 + Exp(mean 60 days)`` before their first B12 therapy. Neuropathic pain in 40 % with a
    neuropathy diagnosis (8 % otherwise), post-herpetic neuralgia 0.4 % over 60; 55 % of pain
    patients on pregabalin or duloxetine, 30 % of those with a failed first-line agent and
    gabapentin, amitriptyline or capsaicin.
Tests
    a B12 result for ``0.25 + 0.5 * neuro + 0.3 * risk factor + 0.1 * (age > 65)`` (max 0.95), dated
    1-240 days ago, 20 % with an earlier one 1-4 years ago; unit ng/L 45 %, pg/mL 35 %, pmol/L
    20 % (value / 1.355); the value is the true level x log-normal noise (sigma 0.08), except that
    4 % of results are exactly 179, 180, 350 or 351 ng/L or pg/mL. Active B12 (holotranscobalamin,
    pmol/L, about true / 5.6) in 12 % of those tested, 10 % of them at 24, 25, 70 or 71. MMA
    (umol/L or nmol/L) for 55 % of indeterminate results, 40 % with neuro findings, 15 % otherwise;
    elevated when B12 is low and in 25 % of indeterminate (functional deficiency) and 5 % of
    normal ones; 40 % carry an interpretation flag, 25 % a reference range, 35 % neither.
    Homocysteine likewise (12-35 %). Folate (35 % of those tested, 40 % of low values flagged),
    haemoglobin (40 %), haematocrit, platelets (flagged or with a reference range), iron; TSH
    (55 % with neuro findings, 20 % otherwise); HIV, hepatitis B and C tests (45 % each with neuro
    findings, 5 % otherwise; negative unless infected); serum protein electrophoresis (30 % with
    neuro findings, 80 % with a gammopathy); potassium in the first days of therapy.
B12 therapy
    for 60 % of patients who need it (B12 < 180, pernicious anaemia or gastrectomy (85 %), ileal
    resection > 20 cm, or indeterminate with neuro findings (30 %)) and 3 % of the others
    (supplements: oral cyanocobalamin or methylcobalamin). Scenarios for those who need it:
    loading now 18 % (hydroxocobalamin 1 mg IM alternate days with neuro findings, 15 % of them on
    the three-times-weekly regimen; cyanocobalamin 1000 ug IM daily for 10 % of severe cases;
    three times weekly without neuro findings; loading-phase observation 60 %), maintenance 30 %
    (a completed loading course, then IM every 2 months 45 % / monthly 30 % / every 3 months 25 %,
    plateau 70 % with neuro findings, maintenance-phase observation 65 %, recurrence 8 %, a last
    single dose 40 %), lapsed maintenance 8 % (course stopped 1-13 months ago), oral current 25 %
    (cyanocobalamin 1000-2000 ug daily, methylcobalamin 1500 ug, or sublingual), oral ended 7 %,
    single IM dose 5 %, cyanocobalamin 1000 ug IM monthly 7 %. Treated patients have a
    pre-treatment result and, in half, a (normal) post-treatment one, sometimes homocysteine too.
Folic acid
    besides pregnancy: 50 % of patients with a low folate and 2 % of the others, 1 or 5 mg daily,
    started before or after the B12 therapy.

Size: about 37 triples per patient on average (seed 1: 10,000 patients, 372,000
triples, 11 MB of Turtle).

Coverage stratum
----------------

Some catalog statements need rare combinations (IV glucose with thiamine deficiency, vitamin C
with bortezomib, a recurrence under every-2-month maintenance ...). So that a cohort of a few
hundred patients fires every one of the 64 catalog identifiers, every ``coverage_every``-th
patient (default 25, i.e. 4 %; 0 turns it off) is instead a deliberately constructed profile from
:data:`COVERAGE_PROFILES`, taken in turn. Each profile is a plausible patient built around the
statements it names, with a random age, sex and dates; its label is written as a Turtle comment.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

from .fhir import RESECTED_LENGTH_EXTENSION

DEFAULT_AS_OF = dt.date(2026, 6, 1)
FORMATS = ("turtle", "ntriples", "fhir-ndjson")

# --------------------------------------------------------------------------------------------
# Namespaces and code systems
# --------------------------------------------------------------------------------------------

B12 = "https://w3id.org/b12kg/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
SYNTH_BASE = "https://example.org/b12kg/synth/"
PREFIXES = {  # Turtle prefix -> namespace (order = order in the header)
    "b12": B12,
    "xsd": XSD,
    "sct": "http://snomed.info/id/",
    "loinc": "https://loinc.org/rdf/",
    "rxnorm": "http://purl.bioontology.org/ontology/RXNORM/",
    "local": "https://w3id.org/b12kg/CodeSystem/local/",
}
SCT, LOINC, RXNORM, LOCAL = ("http://snomed.info/sct", "http://loinc.org",
                            "http://www.nlm.nih.gov/research/umls/rxnorm", "https://w3id.org/b12kg/CodeSystem/local")
_CODE_PREFIX = {SCT: "sct", LOINC: "loinc", RXNORM: "rxnorm", LOCAL: "local"}
UCUM = "http://unitsofmeasure.org"

# lab kind -> (class, LOINC code, display)
LABS = {
    "b12_mass": ("TotalB12Result", "2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"),
    "b12_mol": ("TotalB12Result", "14685-2", "Cobalamin (Vitamin B12) [Moles/volume] in Serum or Plasma"),
    "holotc": ("ActiveB12Result", "72160-5", "Holo-transcobalamin II [Moles/volume] in Serum"),
    "mma": ("MMAResult", "13964-2", "Methylmalonate [Moles/volume] in Serum or Plasma"),
    "hcy": ("HomocysteineResult", "13965-9", "Homocysteine [Moles/volume] in Serum or Plasma"),
    "folate": ("FolateResult", "2284-8", "Folate [Mass/volume] in Serum or Plasma"),
    "hba1c": ("HbA1cResult", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    "glucose": ("FastingGlucoseResult", "1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma"),
    "tsh": ("TSHResult", "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
    "potassium": ("PotassiumResult", "2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
    "hct": ("HaematocritResult", "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"),
    "retic": ("ReticulocyteResult", "4679-7", "Reticulocytes/100 erythrocytes in Blood"),
    "plt": ("PlateletResult", "777-3", "Platelets [#/volume] in Blood by Automated count"),
    "hb": ("HaemoglobinResult", "718-7", "Hemoglobin [Mass/volume] in Blood"),
    "egfr": ("EGFRResult", "98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)"),
    "creat": ("CreatinineResult", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    "iron": ("IronResult", "2498-4", "Iron [Mass/volume] in Serum or Plasma"),
    "spep": ("SPEPResult", "33358-3", "Protein.monoclonal [Mass/volume] in Serum or Plasma by Electrophoresis"),
    "hiv": ("HIVTestResult", None, "HIV screening test"),
    "hbv": ("HepatitisBTestResult", None, "Hepatitis B screening test"),
    "hcv": ("HepatitisCTestResult", None, "Hepatitis C screening test"),
}
_LOCAL_LAB_CODES = {"hiv": "hiv-test", "hbv": "hepatitis-b-test", "hcv": "hepatitis-c-test"}

# condition / finding / observation / procedure kind -> (class, system, code, display, FHIR resource)
CONCEPTS = {
    "b12_deficiency": ("B12DeficiencyDiagnosis", SCT, "190634004", "Vitamin B12 deficiency (disorder)", "Condition"),
    "pernicious_anaemia": ("PerniciousAnaemia", SCT, "84027009", "Pernicious anemia (disorder)", "Condition"),
    "peripheral_neuropathy": ("PeripheralNeuropathy", SCT, "302226006", "Peripheral nerve disease (disorder)", "Condition"),
    "neuropathy": ("Neuropathy", SCT, "386033004", "Neuropathy (disorder)", "Condition"),
    "polyneuropathy": ("Polyneuropathy", SCT, "42345000", "Polyneuropathy (disorder)", "Condition"),
    "paraesthesia": ("Paraesthesia", SCT, "91019004", "Paresthesia (finding)", "Condition"),
    "ataxia": ("Ataxia", SCT, "20262006", "Ataxia (finding)", "Condition"),
    "gait_disturbance": ("Ataxia", LOCAL, "gait-disturbance", "Gait disturbance", "Condition"),
    "cognitive_dysfunction": ("CognitiveDysfunction", SCT, "386806002", "Impaired cognition (finding)", "Condition"),
    "scd": ("SubacuteCombinedDegeneration", LOCAL, "subacute-combined-degeneration", "Subacute combined degeneration of spinal cord", "Condition"),
    "myelopathy": ("Myelopathy", LOCAL, "myelopathy", "Myelopathy", "Condition"),
    "demyelination": ("Demyelination", LOCAL, "demyelination", "Demyelination", "Condition"),
    "numbness": ("Numbness", LOCAL, "numbness", "Numbness", "Condition"),
    "vibration_loss": ("VibrationSenseLoss", LOCAL, "vibration-sense-loss", "Loss of vibration sense", "Condition"),
    "muscle_weakness": ("MuscleWeakness", LOCAL, "muscle-weakness", "Muscle weakness", "Condition"),
    "abnormal_reflexes": ("AbnormalReflexes", LOCAL, "abnormal-reflexes", "Abnormal reflexes", "Condition"),
    "neuropathic_pain": ("NeuropathicPain", LOCAL, "neuropathic-pain", "Neuropathic pain", "Condition"),
    "phn": ("PostHerpeticNeuralgia", SCT, "2177002", "Postherpetic neuralgia (disorder)", "Condition"),
    "diabetes": ("DiabetesMellitus", SCT, "44054006", "Diabetes mellitus type 2 (disorder)", "Condition"),
    "dpn": ("DiabeticPeripheralNeuropathy", SCT, "1511000119107", "Peripheral neuropathy due to type 2 diabetes mellitus (disorder)", "Condition"),
    "hypothyroidism": ("Hypothyroidism", SCT, "40930008", "Hypothyroidism (disorder)", "Condition"),
    "ckd": ("RenalDysfunctionDiagnosis", SCT, "709044004", "Chronic kidney disease (disorder)", "Condition"),
    "ckd3": ("RenalDysfunctionDiagnosis", SCT, "433144002", "Chronic kidney disease stage 3 (disorder)", "Condition"),
    "ckd4": ("RenalDysfunctionDiagnosis", SCT, "431857002", "Chronic kidney disease stage 4 (disorder)", "Condition"),
    "ckd5": ("RenalDysfunctionDiagnosis", SCT, "433146000", "Chronic kidney disease stage 5 (disorder)", "Condition"),
    "crohns_ileum": ("CrohnsDiseaseOfIleum", SCT, "38106008", "Crohn's disease of ileum (disorder)", "Condition"),
    "crohns": ("CrohnsDisease", SCT, "34000006", "Crohn's disease (disorder)", "Condition"),
    "malabsorption": ("MalabsorptionSyndrome", SCT, "32230006", "Malabsorption syndrome (disorder)", "Condition"),
    "pregnancy": ("Pregnancy", SCT, "77386006", "Pregnancy (finding)", "Condition"),
    "breastfeeding": ("Breastfeeding", SCT, "169750002", "Mother currently breast-feeding (finding)", "Condition"),
    "hiv_infection": ("HIVInfection", SCT, "86406008", "Human immunodeficiency virus infection (disorder)", "Condition"),
    "hepatitis_b": ("HepatitisB", SCT, "66071002", "Viral hepatitis type B (disorder)", "Condition"),
    "hepatitis_c": ("HepatitisC", SCT, "50711007", "Viral hepatitis type C (disorder)", "Condition"),
    "mgus": ("MGUS", SCT, "277577000", "Monoclonal gammopathy of uncertain significance (disorder)", "Condition"),
    "myeloma": ("MultipleMyeloma", SCT, "109989006", "Multiple myeloma (disorder)", "Condition"),
    "cipn": ("ChemotherapyInducedNeuropathy", LOCAL, "chemotherapy-induced-neuropathy", "Chemotherapy-induced peripheral neuropathy", "Condition"),
    "thiamine_deficiency": ("ThiamineDeficiency", LOCAL, "thiamine-deficiency", "Thiamine deficiency", "Condition"),
    "needle_phobia": ("NeedlePhobia", LOCAL, "needle-phobia", "Needle phobia", "Condition"),
    # observations (FHIR Observation, no value)
    "vegan": ("VeganDiet", SCT, "1255165006", "Vegan diet", "Observation"),
    "vegetarian": ("VegetarianDiet", SCT, "765021002", "Vegetarian diet", "Observation"),
    "plateau": ("NeuroImprovementPlateau", LOCAL, "neuro-improvement-plateau", "Neurological improvement has plateaued", "Observation"),
    "recurrence": ("SymptomRecurrence", LOCAL, "symptom-recurrence", "Symptom recurrence", "Observation"),
    "first_line_failed": ("FirstLinePainAgentFailed", LOCAL, "first-line-pain-agent-failed", "First-line neuropathic pain agent failed", "Observation"),
    "loading_phase": ("LoadingPhaseObservation", LOCAL, "b12-loading-phase", "B12 therapy loading phase", "Observation"),
    "maintenance_phase": ("MaintenancePhaseObservation", LOCAL, "b12-maintenance-phase", "B12 therapy maintenance phase", "Observation"),
    # procedures
    "gastrectomy": ("Gastrectomy", SCT, "53442002", "Excision of stomach structure (procedure)", "Procedure"),
    "total_gastrectomy": ("Gastrectomy", SCT, "26452005", "Total gastrectomy (procedure)", "Procedure"),
    "ileal_resection": ("IlealResection", SCT, "51346007", "Ileectomy (procedure)", "Procedure"),
    "small_bowel_resection": ("SmallBowelResection", LOCAL, "small-bowel-resection", "Small-bowel resection", "Procedure"),
}

# drug -> (individual, system, code, display)
DRUGS = {
    "hydroxocobalamin": ("hydroxocobalamin", LOCAL, "hydroxocobalamin", "hydroxocobalamin"),
    "cyanocobalamin": ("cyanocobalamin", RXNORM, "11248", "cyanocobalamin"),
    "methylcobalamin": ("methylcobalamin", LOCAL, "methylcobalamin", "methylcobalamin"),
    "folic_acid": ("folicAcid", RXNORM, "4511", "folic acid"),
    "metformin": ("metformin", RXNORM, "6809", "metformin"),
    "omeprazole": ("omeprazole", RXNORM, "7646", "omeprazole"),
    "pantoprazole": ("pantoprazole", RXNORM, "40790", "pantoprazole"),
    "esomeprazole": ("esomeprazole", RXNORM, "283742", "esomeprazole"),
    "lansoprazole": ("lansoprazole", RXNORM, "17128", "lansoprazole"),
    "pregabalin": ("pregabalin", RXNORM, "187832", "pregabalin"),
    "duloxetine": ("duloxetine", RXNORM, "72625", "duloxetine"),
    "gabapentin": ("gabapentin", RXNORM, "25480", "gabapentin"),
    "amitriptyline": ("amitriptyline", RXNORM, "704", "amitriptyline"),
    "capsaicin": ("capsaicin", LOCAL, "capsaicin", "capsaicin"),
    "warfarin": ("warfarin", RXNORM, "11289", "warfarin"),
    "apixaban": ("apixaban", RXNORM, "1364430", "apixaban"),
    "bortezomib": ("bortezomib", RXNORM, "358258", "bortezomib"),
    "ascorbic_acid": ("ascorbicAcid", RXNORM, "1151", "ascorbic acid"),
    "glucose": ("glucose", RXNORM, "4850", "glucose"),
}
# route -> (individual, SNOMED code, display)
ROUTES = {
    "im": ("intramuscular", "78421000", "Intramuscular route"),
    "oral": ("oral", "26643006", "Oral route"),
    "sublingual": ("sublingual", "37839007", "Sublingual route"),
    "iv": ("intravenous", "47625008", "Intravenous route"),
    "topical": ("topical", "6064005", "Topical route"),
    "sc": ("subcutaneous", "34206005", "Subcutaneous route"),
}
# frequency individual -> FHIR timing.repeat (None = single dose, count 1)
FREQUENCIES = {
    "once": None,
    "daily": (1, 1, "d"),
    "alternateDays": (1, 2, "d"),
    "threeTimesWeekly": (3, 1, "wk"),
    "weekly": (1, 1, "wk"),
    "monthly": (1, 1, "mo"),
    "every2Months": (1, 2, "mo"),
    "every3Months": (1, 3, "mo"),
}
_FREQ_TEXT = {"once": "single dose", "daily": "daily", "alternateDays": "on alternate days",
              "threeTimesWeekly": "three times weekly", "weekly": "weekly", "monthly": "monthly",
              "every2Months": "every 2 months", "every3Months": "every 3 months"}
_FLAGS = {"high": ("H", "High"), "low": ("L", "Low"), "normal": ("N", "Normal"), "criticalHigh": ("HH", "Critical high")}
_CODED_VALUES = {"negative": ("260385009", "Negative"), "positive": ("10828004", "Positive")}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def num(x: float, places: int = 0) -> str:
    """A number as written in the output: fixed-point with ``places`` decimals, trailing zeros dropped."""
    if places <= 0:
        return str(int(round(x)))
    text = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(slots=True)
class Lab:
    kind: str
    date: dt.date
    value: str | None = None  # a number, as text (see num)
    unit: str | None = None
    flag: str | None = None  # high, low, normal, criticalHigh
    ref_low: str | None = None
    ref_high: str | None = None
    coded: str | None = None  # negative, positive


@dataclass(slots=True)
class Concept:
    kind: str
    date: dt.date  # onset (conditions), date (observations, procedures)
    length_cm: int | None = None  # ileal resection
    length_as_observation: bool = True  # FHIR: length as an Observation partOf the Procedure (else extension)


@dataclass(slots=True)
class Med:
    drug: str
    dose: str
    unit: str
    route: str
    freq: str
    start: dt.date
    end: dt.date | None = None
    status: str = "active"  # active, completed, stopped


@dataclass(slots=True)
class Record:
    name: str  # local name, unique within the patient ("b12-1")
    item: Lab | Concept | Med
    coded: bool = False  # RDF: name the concept / drug / route by its code


@dataclass
class Patient:
    index: int
    local: str  # p000001
    birth: dt.date
    sex: str  # female, male, other, unknown
    records: list[Record] = field(default_factory=list)
    profile: str | None = None  # coverage profile label, or None (natural stratum)


# --------------------------------------------------------------------------------------------
# Building a patient
# --------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, rng: random.Random, as_of: dt.date, patient: Patient):
        self.rng = rng
        self.as_of = as_of
        self.p = patient
        self.counts: dict[str, int] = {}
        self.adult = _add_years(patient.birth, 18)

    # dates
    def ago(self, days: float) -> dt.date:
        d = self.as_of - dt.timedelta(days=max(0, int(days)))
        return max(d, min(self.adult, self.as_of))

    def after(self, d: dt.date, days: float) -> dt.date:
        return min(self.as_of, d + dt.timedelta(days=max(0, int(days))))

    def _add(self, slug: str, item, coded: bool | None = None) -> Record:
        n = self.counts.get(slug, 0) + 1
        self.counts[slug] = n
        if coded is None:
            coded = self.rng.random() < 0.12
        rec = Record(f"{slug}-{n}", item, coded)
        self.p.records.append(rec)
        return rec

    def lab(self, slug: str, kind: str, date: dt.date, value=None, unit=None, *, flag=None,
            ref_low=None, ref_high=None, coded=None) -> Lab:
        item = Lab(kind, date, value, unit, flag, ref_low, ref_high, coded)
        self._add(slug, item)
        return item

    def concept(self, kind: str, date: dt.date, slug: str | None = None, **kw) -> Concept:
        item = Concept(kind, date, **kw)
        self._add(slug or kind.replace("_", "-"), item)
        return item

    def med(self, slug: str, drug: str, dose, unit: str, route: str, freq: str, start: dt.date,
            end: dt.date | None = None, status: str | None = None) -> Med:
        if freq == "once":
            end = start if end is None else end
        if status is None:
            status = "completed" if freq == "once" or (end is not None and end < self.as_of) else "active"
        item = Med(drug, str(dose), unit, route, freq, start, end, status)
        self._add(slug, item)
        return item


def _add_years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for value, w in weighted:
        x -= w
        if x < 0:
            return value
    return weighted[-1][0]


def _b12_lab(b: _Builder, slug: str, ng_per_l: float, date: dt.date, *, exact: bool = False, unit: str | None = None) -> None:
    """A total B12 result of ``ng_per_l`` in ng/L, pg/mL or pmol/L."""
    rng = b.rng
    unit = unit or _pick(rng, [("ng/L", 45), ("pg/mL", 35), ("pmol/L", 20)])
    if exact and unit == "pmol/L":
        unit = "ng/L"
    if unit == "pmol/L":
        b.lab(slug, "b12_mol", date, num(max(15, ng_per_l / 1.355)), "pmol/L")
    else:
        b.lab(slug, "b12_mass", date, num(max(20, ng_per_l)), unit)


def _mma_lab(b: _Builder, umol: float, date: dt.date, slug: str = "mma") -> None:
    rng = b.rng
    style = _pick(rng, [("flag", 40), ("range", 25), ("none", 35)])
    nmol = rng.random() < 0.4
    value = num(umol * 1000) if nmol else num(umol, 2)
    unit = "nmol/L" if nmol else "umol/L"
    shown = float(value) / (1000 if nmol else 1)
    if style == "flag":
        b.lab(slug, "mma", date, value, unit, flag="high" if shown > 0.40 else "normal")
    elif style == "range":
        high = rng.choice((0.37, 0.40, 0.45))
        b.lab(slug, "mma", date, value, unit, ref_high=num(high * 1000) if nmol else num(high, 2))
    else:
        b.lab(slug, "mma", date, value, unit)


def _hcy_lab(b: _Builder, umol: float, date: dt.date, slug: str = "hcy") -> None:
    rng = b.rng
    style = _pick(rng, [("flag", 40), ("range", 25), ("none", 35)])
    value = num(umol, 1)
    if style == "flag":
        b.lab(slug, "hcy", date, value, "umol/L", flag="high" if float(value) > 15 else "normal")
    elif style == "range":
        b.lab(slug, "hcy", date, value, "umol/L", ref_low="5", ref_high=rng.choice(("12", "15")))
    else:
        b.lab(slug, "hcy", date, value, "umol/L")


def _screening(b: _Builder, kind: str, date: dt.date, infected: bool) -> None:
    b.lab(kind, kind, date, coded="positive" if infected else "negative",
          flag=("abnormal" if infected else "normal") if b.rng.random() < 0.4 else None)


# --------------------------------------------------------------------------------------------
# The natural stratum
# --------------------------------------------------------------------------------------------

_NEURO_FINDINGS = [
    ("paraesthesia", 22), ("numbness", 15), ("peripheral_neuropathy", 14), ("neuropathy", 5), ("polyneuropathy", 6),
    ("vibration_loss", 8), ("abnormal_reflexes", 5), ("muscle_weakness", 5), ("ataxia", 4), ("gait_disturbance", 1),
    ("cognitive_dysfunction", 6), ("demyelination", 1), ("myelopathy", 1),
]
_NEUROPATHY_KINDS = {"peripheral_neuropathy", "neuropathy", "polyneuropathy", "dpn", "cipn"}
_SEVERE_KINDS = {"ataxia", "gait_disturbance", "cognitive_dysfunction", "muscle_weakness", "myelopathy", "scd"}


def _demographics(rng: random.Random, as_of: dt.date) -> tuple[int, dt.date, str]:
    age = 18 + int(77 * rng.betavariate(2.2, 1.6))
    age = min(age, 95)
    birth = _add_years(as_of, -age) - dt.timedelta(days=rng.randint(1, 364))
    sex = _pick(rng, [("female", 52), ("male", 47.5), ("other", 0.3), ("unknown", 0.2)])
    return age, birth, sex


def _natural(b: _Builder, age: int) -> None:
    rng, p = b.rng, b.p
    female = p.sex == "female"
    older = (age - 18) / 77
    years = lambda lo, hi: rng.uniform(lo, hi) * 365.25  # noqa: E731

    # --- risk factors and conditions -------------------------------------------------------
    diabetic = rng.random() < 0.10 + 0.34 * older
    metformin_long = False
    if diabetic:
        dm_onset = b.ago(years(0.5, min(25, age - 17)))
        b.concept("diabetes", dm_onset)
        if rng.random() < 0.85:
            if rng.random() < 0.15:
                start = b.ago(rng.randint(1, 120))
            else:
                start = b.ago(rng.randint(125, max(126, min(7300, (b.as_of - dm_onset).days))))
            stopped = rng.random() < 0.08
            end = b.after(start, rng.randint(30, 900)) if stopped else None
            if end is not None and end >= b.as_of:
                end = b.ago(1)
            b.med("metformin", "metformin", rng.choice((500, 850, 1000)), "mg", "oral", "daily", start, end,
                  "stopped" if stopped else "active")
            metformin_long = not stopped and (b.as_of - start).days > 124
        if rng.random() < 0.9:
            b.lab("hba1c", "hba1c", b.ago(rng.randint(5, 300)), num(min(13, max(5.6, rng.normalvariate(7.4, 1.1))), 1), "%")
        if rng.random() < 0.3:
            b.lab("glucose", "glucose", b.ago(rng.randint(5, 300)), num(max(90, rng.normalvariate(150, 30))), "mg/dL")
    else:
        if rng.random() < 0.3:
            b.lab("hba1c", "hba1c", b.ago(rng.randint(5, 700)), num(min(6.4, max(4.5, rng.normalvariate(5.4, 0.3))), 1), "%")
        if rng.random() < 0.1:
            b.lab("glucose", "glucose", b.ago(rng.randint(5, 700)), num(min(125, max(65, rng.normalvariate(92, 9)))), "mg/dL")

    ppi_long = False
    if rng.random() < 0.08 + 0.16 * older:
        recent = rng.random() < 0.3
        start = b.ago(rng.randint(7, 360) if recent else rng.randint(370, 3650))
        drug = rng.choice(("omeprazole", "pantoprazole", "esomeprazole", "lansoprazole"))
        b.med("ppi", drug, rng.choice((20, 40)) if drug != "lansoprazole" else 30, "mg", "oral", "daily", start)
        ppi_long = not recent and (b.as_of - start).days > 366

    diet = None
    boost = 1.5 if age < 40 else 1.0
    r = rng.random()
    if r < 0.02 * boost:
        diet = "vegan"
    elif r < 0.06 * boost:
        diet = "vegetarian"
    if diet:
        b.concept(diet, b.ago(rng.randint(30, 3000)), slug="diet")

    pregnant = False
    if female and age <= 45:
        r = rng.random()
        if r < 0.07:
            pregnant = True
            b.concept("pregnancy", b.ago(rng.randint(14, 270)))
        elif r < 0.10:
            pregnant = True
            b.concept("breastfeeding", b.ago(rng.randint(20, 300)))

    mult = 1.0
    malabs = set()
    pa_rate = (0.02 if age > 50 else 0.005) * (1.5 if female else 1.0)
    if rng.random() < pa_rate:
        malabs.add("pa")
        b.concept("pernicious_anaemia", b.ago(years(0.1, 20)))
        mult *= 0.3
    if rng.random() < 0.006:
        malabs.add("gastrectomy")
        b.concept(rng.choice(("gastrectomy", "total_gastrectomy")), b.ago(years(0.3, 25)), slug="gastrectomy")
        mult *= 0.4
    ileal_cm = None
    crohns_ileum = rng.random() < 0.008
    if crohns_ileum:
        malabs.add("crohns")
        b.concept("crohns_ileum", b.ago(years(1, 30)))
        mult *= 0.7
    if rng.random() < 0.006 or (crohns_ileum and rng.random() < 0.3):
        malabs.add("ileal")
        ileal_cm = rng.randint(5, 60)
        b.concept("ileal_resection", b.ago(years(0.2, 20)), length_cm=ileal_cm, length_as_observation=rng.random() < 0.6)
        mult *= 0.5 if ileal_cm > 20 else 0.8
    if rng.random() < 0.003:
        b.concept("crohns", b.ago(years(1, 20)))
    if rng.random() < 0.003:
        malabs.add("syndrome")
        b.concept("malabsorption", b.ago(years(0.2, 10)))
        mult *= 0.6
    if rng.random() < 0.002:
        malabs.add("sbr")
        b.concept("small_bowel_resection", b.ago(years(0.5, 20)))
        mult *= 0.7
    if metformin_long:
        mult *= 0.75
    if ppi_long:
        mult *= 0.85
    if diet == "vegan":
        mult *= 0.5
    elif diet == "vegetarian":
        mult *= 0.75
    if age > 75:
        mult *= 0.9
    true_b12 = math.exp(rng.normalvariate(math.log(420 * mult), 0.42))
    low, indeterminate = true_b12 < 180, 180 <= true_b12 <= 350

    # kidneys
    egfr = min(130, max(5, rng.normalvariate(110 - 0.7 * (age - 18) - 8 * diabetic, 15)))
    if rng.random() < 0.55:
        b.lab("egfr", "egfr", b.ago(rng.randint(3, 400)), num(egfr), "mL/min/{1.73_m2}")
    if rng.random() < 0.4:
        creat = 0.95 * (90 / egfr) ** 0.9 * (1.0 if female else 1.15)
        b.lab("creat", "creat", b.ago(rng.randint(3, 400)), num(creat, 2), "mg/dL")
    if egfr < 60 and rng.random() < 0.5:
        kind = rng.choice(("ckd", "ckd3" if egfr >= 30 else "ckd4" if egfr >= 15 else "ckd5"))
        b.concept(kind, b.ago(years(0.5, 10)), slug="ckd")

    hypothyroid = rng.random() < 0.04 * (2 if female else 1)
    if hypothyroid:
        b.concept("hypothyroidism", b.ago(years(0.5, 20)))
    infections = {k: rng.random() < pr for k, pr in (("hiv", 0.004), ("hbv", 0.005), ("hcv", 0.008))}
    for k, kind in (("hiv", "hiv_infection"), ("hbv", "hepatitis_b"), ("hcv", "hepatitis_c")):
        if infections[k]:
            b.concept(kind, b.ago(years(0.5, 15)))
    gammopathy = False
    cipn = False
    if rng.random() < (0.03 if age > 50 else 0.005):
        gammopathy = True
        b.concept("mgus", b.ago(years(0.3, 10)))
    if age > 50 and rng.random() < 0.005:
        gammopathy = True
        b.concept("myeloma", b.ago(years(0.2, 5)))
        if rng.random() < 0.6:
            start = b.ago(rng.randint(20, 400))
            ended = rng.random() < 0.35
            end = b.after(start, rng.randint(60, 240)) if ended else None
            if end is not None and end >= b.as_of:
                end = None
            b.med("bortezomib", "bortezomib", "2.2", "mg", "sc", "weekly", start, end)
            if rng.random() < 0.45:
                cipn = True
                b.concept("cipn", b.after(start, rng.randint(20, 120)))
    if rng.random() < (0.10 if age > 65 else 0.02):
        drug = rng.choice(("warfarin", "apixaban"))
        b.med("anticoagulant", drug, 5, "mg", "oral", "daily", b.ago(rng.randint(30, 3000)))
    if rng.random() < 0.015:
        b.concept("needle_phobia", b.ago(years(1, 30)))
    if rng.random() < 0.03:
        b.med("vitamin-c", "ascorbic_acid", rng.choice((500, 1000, 2000)), "mg", "oral", "daily", b.ago(rng.randint(10, 1500)))
    if rng.random() < 0.004:
        thiamine = b.ago(rng.randint(1, 60))
        b.concept("thiamine_deficiency", thiamine)
        if rng.random() < 0.35:
            iv = rng.random() < 0.6
            b.med("glucose", "glucose", 25 if iv else 15, "g", "iv" if iv else "oral", "daily", b.ago(rng.randint(0, 3)))

    # --- neurological findings ------------------------------------------------------------------
    risk = metformin_long or ppi_long or bool(diet) or bool(malabs) or pregnant
    p_neuro = 0.08 + 0.10 * older + 0.12 * diabetic + (0.35 if low else 0.12 if indeterminate else 0.0)
    findings: set[str] = set()
    if diabetic and rng.random() < 0.22:
        findings.add("dpn")
    if cipn:
        findings.add("cipn")
    if rng.random() < p_neuro:
        n = 1 + (rng.random() < 0.45) + (rng.random() < 0.15)
        pool = list(_NEURO_FINDINGS)
        if true_b12 < 200:
            pool.append(("scd", 3))
        while len(findings - {"dpn", "cipn"}) < n:
            findings.add(_pick(rng, pool))
    neuro = bool(findings)
    severe = bool(findings & _SEVERE_KINDS)
    neuropathy = bool(findings & _NEUROPATHY_KINDS)
    pain = rng.random() < (0.40 if neuropathy else 0.08 if neuro else 0.0)
    phn = age > 60 and rng.random() < 0.004
    if phn:
        b.concept("phn", b.ago(rng.randint(30, 1500)))
        pain = True
    if pain:
        if not phn:
            b.concept("neuropathic_pain", b.ago(rng.randint(10, 900)))
        if rng.random() < 0.55:
            first = rng.choice(("pregabalin", "duloxetine"))
            start = b.ago(rng.randint(20, 700))
            if rng.random() < 0.3:
                b.med("pain", first, 150 if first == "pregabalin" else 60, "mg", "oral", "daily", start,
                      b.after(start, rng.randint(14, 120)), "stopped")
                b.concept("first_line_failed", b.after(start, rng.randint(30, 150)), slug="pain-failed")
                second = rng.choice(("gabapentin", "amitriptyline", "capsaicin"))
                dose, unit, route = {"gabapentin": (900, "mg", "oral"), "amitriptyline": (25, "mg", "oral"),
                                     "capsaicin": (179, "mg", "topical")}[second]
                b.med("pain", second, dose, unit, route, "daily", b.after(start, rng.randint(140, 200)))
            else:
                b.med("pain", first, 150 if first == "pregabalin" else 60, "mg", "oral", "daily", start)

    # --- B12 therapy (decided before the tests, which depend on it) ----------------------------
    needs = low or "pa" in malabs or "gastrectomy" in malabs or (ileal_cm or 0) > 20 or (indeterminate and neuro and rng.random() < 0.3)
    p_tx = (0.85 if malabs & {"pa", "gastrectomy"} else 0.6) if needs else 0.03
    first_tx: dt.date | None = None
    treated_normal = False
    if rng.random() < p_tx:
        if needs:
            first_tx = _therapy(b, neuro, severe)
        else:
            start = b.ago(rng.randint(20, 1500))
            drug = rng.choice(("cyanocobalamin", "cyanocobalamin", "methylcobalamin"))
            b.med("b12-supplement", drug, 1000 if drug == "cyanocobalamin" else 1500, "ug", "oral", "daily", start)
            first_tx = start
        treated_normal = rng.random() < 0.5
    # onsets: in a treated patient who needed it, mostly before the first B12 therapy (the findings
    # led to it); otherwise 1 + Exp(mean 150 days) ago
    for kind in sorted(findings - {"cipn"}):
        if first_tx is not None and needs and rng.random() < 0.85:
            onset = b.ago((b.as_of - first_tx).days + 1 + min(1000, rng.expovariate(1 / 60)))
        else:
            onset = b.ago(1 + min(3650, rng.expovariate(1 / 150)))
        b.concept(kind, onset)

    # --- tests ----------------------------------------------------------------------------------
    p_test = min(0.95, 0.25 + 0.5 * neuro + 0.3 * risk + 0.1 * (age > 65))
    if first_tx is not None:
        p_test = max(p_test, 0.85)
    tested = rng.random() < p_test
    if tested:
        if first_tx is not None:
            pre = b.ago(max(0, (b.as_of - first_tx).days + rng.randint(1, 30)))
            dates = [pre]
            if treated_normal and (b.as_of - first_tx).days > 60:
                dates.append(b.after(first_tx, rng.randint(60, max(61, (b.as_of - first_tx).days))))
        else:
            dates = [b.ago(rng.randint(1, 240))]
            if rng.random() < 0.2:
                dates.insert(0, b.ago(rng.randint(370, 1460)))
        for i, date in enumerate(dates):
            post = first_tx is not None and date > first_tx
            value = (math.exp(rng.normalvariate(math.log(700), 0.3)) if post
                     else true_b12 * math.exp(rng.normalvariate(0, 0.08)))
            exact = not post and rng.random() < 0.04
            if exact:
                value = rng.choice((179, 180, 350, 351))
            _b12_lab(b, "b12", value, date, exact=exact)
        last = dates[-1]
        if rng.random() < 0.12:
            holo = true_b12 / 5.6 * math.exp(rng.normalvariate(0, 0.2))
            if rng.random() < 0.1:
                holo = rng.choice((24, 25, 70, 71))
            b.lab("holotc", "holotc", last, num(max(5, holo)), "pmol/L")
        if rng.random() < (0.55 if indeterminate else 0.4 if neuro else 0.15):
            mma = 0.18 * math.exp(rng.normalvariate(0, 0.25))
            if low:
                mma *= 3 * math.exp(rng.normalvariate(0, 0.4))
            elif (indeterminate and rng.random() < 0.25) or rng.random() < 0.05:
                mma *= 2.8
            _mma_lab(b, mma, dates[0])
        if rng.random() < (0.35 if (neuro or indeterminate) else 0.12):
            hcy = 10 * math.exp(rng.normalvariate(0, 0.22)) * (1.8 if low else 1.0)
            _hcy_lab(b, hcy, dates[0])
        if first_tx is not None and rng.random() < 0.25:
            hcy = 9 * math.exp(rng.normalvariate(0, 0.25))
            _hcy_lab(b, hcy, b.after(first_tx, rng.randint(20, max(21, (b.as_of - first_tx).days))), slug="hcy-followup")
        folate_low = False
        if rng.random() < 0.35:
            folate = math.exp(rng.normalvariate(math.log(9), 0.5))
            folate_low = folate < 3
            b.lab("folate", "folate", dates[0], num(folate, 1), "ng/mL",
                  flag="low" if folate_low and rng.random() < 0.4 else None)
        if rng.random() < 0.4:
            hb = rng.normalvariate(13.0 if female else 14.5, 1.1) - (1.8 if low else 0)
            limit = 12 if female else 13
            b.lab("hb", "hb", dates[0], num(hb, 1), "g/dL", flag="low" if hb < limit else "normal" if rng.random() < 0.5 else None)
        if rng.random() < 0.2:
            b.lab("hct", "hct", dates[0], num(rng.normalvariate(40 if female else 44, 3) - (5 if low else 0), 1), "%")
        if rng.random() < 0.2:
            plt = rng.normalvariate(250, 55) - (70 if low else 0)
            style = rng.random()
            if style < 0.5:
                b.lab("plt", "plt", dates[-1], num(max(20, plt)), "10*9/L",
                      flag="low" if plt < 150 else "high" if plt > 400 else "normal")
            elif style < 0.8:
                b.lab("plt", "plt", dates[-1], num(max(20, plt)), "10*9/L", ref_low="150", ref_high="400")
            else:
                b.lab("plt", "plt", dates[-1], num(max(20, plt)), "10*9/L")
        if rng.random() < 0.1:
            b.lab("iron", "iron", dates[0], num(max(15, rng.normalvariate(90, 30))), "ug/dL")
        if first_tx is not None and (b.as_of - first_tx).days <= 7 and rng.random() < 0.6:
            b.lab("potassium", "potassium", b.after(first_tx, 1), num(rng.normalvariate(4.0, 0.4), 1), "mmol/L")
        if folate_low and rng.random() < 0.5:
            _folic_acid(b, first_tx, pregnant=False)
    if pregnant and rng.random() < 0.65:
        _folic_acid(b, first_tx, pregnant=True)
    elif rng.random() < 0.02:
        _folic_acid(b, first_tx, pregnant=False)

    work_up = b.ago(rng.randint(1, 200))
    if rng.random() < (0.55 if neuro else 0.2) or hypothyroid:
        tsh = rng.normalvariate(2.0, 0.8) * (2.5 if hypothyroid and rng.random() < 0.3 else 1)
        b.lab("tsh", "tsh", work_up, num(max(0.2, tsh), 2), "m[IU]/L")
    for k in ("hiv", "hbv", "hcv"):
        if rng.random() < (0.45 if neuro else 0.05):
            _screening(b, k, work_up, infections[k])
    if rng.random() < (0.8 if gammopathy else 0.3 if neuro else 0.01):
        if gammopathy:
            b.lab("spep", "spep", work_up, num(rng.uniform(0.3, 2.5), 1), "g/dL", flag="high")
        else:
            b.lab("spep", "spep", work_up, "0", "g/dL", flag="normal")


def _folic_acid(b: _Builder, first_tx: dt.date | None, *, pregnant: bool) -> None:
    rng = b.rng
    if pregnant:
        dose = "5" if rng.random() < 0.1 else "0.4"
    else:
        dose = rng.choice(("1", "5", "5"))
    if first_tx is not None and rng.random() < 0.5:
        start = b.ago(max(0, (b.as_of - first_tx).days + rng.randint(5, 200)))  # before the B12 therapy
    else:
        start = b.ago(rng.randint(2, 300))
    b.med("folic-acid", "folic_acid", dose, "mg", "oral", "daily", start)


def _therapy(b: _Builder, neuro: bool, severe: bool) -> dt.date:
    """A B12 treatment history for a patient who needs it; returns the first start date."""
    rng = b.rng
    scenario = _pick(rng, [("loading", 18), ("maintenance", 30), ("lapsed", 8), ("oral", 25),
                           ("oral-ended", 7), ("single", 5), ("im-monthly", 7)])
    hydroxo = ("hydroxocobalamin", "1", "mg")
    if scenario == "loading":
        start = b.ago(rng.randint(0, 40))
        if neuro and severe and rng.random() < 0.1:
            b.med("b12-loading", "cyanocobalamin", 1000, "ug", "im", "daily", start)
        elif neuro and rng.random() < 0.85:
            b.med("b12-loading", *hydroxo, "im", "alternateDays", start)
        else:
            b.med("b12-loading", *hydroxo, "im", "threeTimesWeekly", start)
        if rng.random() < 0.6:
            b.concept("loading_phase", start, slug="phase")
        return start
    if scenario in ("maintenance", "lapsed"):
        start = b.ago(rng.randint(200, 2500))
        loading_days = rng.randint(14, 120)
        end = b.after(start, loading_days)
        b.med("b12-loading", *hydroxo, "im", "alternateDays" if neuro else "threeTimesWeekly", start, end, "completed")
        if neuro and rng.random() < 0.7:
            b.concept("plateau", b.after(start, loading_days - rng.randint(0, 7)))
        m_start = b.after(end, rng.randint(1, 10))
        freq = _pick(rng, [("every2Months", 45), ("monthly", 30), ("every3Months", 25)])
        if rng.random() < 0.65:
            b.concept("maintenance_phase", m_start, slug="phase")
        if scenario == "maintenance":
            b.med("b12-maintenance", *hydroxo, "im", freq, m_start)
            if rng.random() < 0.4:
                b.med("b12-dose", *hydroxo, "im", "once", b.ago(rng.randint(5, 80)))
            if rng.random() < 0.08:
                b.concept("recurrence", b.ago(rng.randint(3, 60)))
        else:
            stop = b.ago(rng.randint(30, 400))
            stop = max(stop, m_start)
            b.med("b12-maintenance", *hydroxo, "im", freq, m_start, stop, "stopped")
        return start
    if scenario in ("oral", "oral-ended"):
        start = b.ago(rng.randint(7, 1500))
        form = _pick(rng, [("cyano", 70), ("cyano2000", 10), ("methyl", 10), ("sublingual", 10)])
        drug, dose, route = {"cyano": ("cyanocobalamin", 1000, "oral"), "cyano2000": ("cyanocobalamin", 2000, "oral"),
                             "methyl": ("methylcobalamin", 1500, "oral"), "sublingual": ("cyanocobalamin", 1000, "sublingual")}[form]
        end = None
        if scenario == "oral-ended":
            end = b.after(start, rng.randint(60, 120))
            if end >= b.as_of:
                end = b.ago(1)
        b.med("b12-oral", drug, dose, "ug", route, "daily", start, end, None if end is None else "completed")
        return start
    if scenario == "single":
        start = b.ago(rng.randint(1, 400))
        b.med("b12-dose", *hydroxo, "im", "once", start)
        return start
    start = b.ago(rng.randint(60, 3000))
    b.med("b12-monthly", "cyanocobalamin", 1000, "ug", "im", "monthly", start)
    return start


# --------------------------------------------------------------------------------------------
# The coverage stratum
# --------------------------------------------------------------------------------------------


def _cov_thiamine_glucose(b: _Builder) -> None:
    b.concept("thiamine_deficiency", b.ago(b.rng.randint(2, 20)))
    b.med("glucose", "glucose", 25, "g", "iv", "daily", b.ago(b.rng.randint(0, 2)))
    _b12_lab(b, "b12", 420, b.ago(5))


def _cov_vitc_bortezomib(b: _Builder) -> None:
    rng = b.rng
    b.concept("myeloma", b.ago(rng.randint(100, 600)))
    start = b.ago(rng.randint(40, 200))
    b.med("bortezomib", "bortezomib", "2.2", "mg", "sc", "weekly", start)
    b.med("vitamin-c", "ascorbic_acid", rng.choice((1000, 2000)), "mg", "oral", "daily", b.ago(rng.randint(10, 300)))
    b.concept("cipn", b.after(start, rng.randint(20, 35)))
    b.concept("neuropathic_pain", b.after(start, rng.randint(25, 40)))
    _b12_lab(b, "b12", rng.randint(400, 700), b.ago(rng.randint(5, 20)))


def _cov_maintenance_escalate(b: _Builder) -> None:
    """Maintenance every 2 months after a plateau, then a recurrence: escalate."""
    rng = b.rng
    start = b.ago(rng.randint(400, 900))
    end = b.after(start, 60)
    b.concept("paraesthesia", b.ago((b.as_of - start).days + 30))
    _b12_lab(b, "b12", rng.randint(100, 170), b.ago((b.as_of - start).days + 5))
    b.med("b12-loading", "hydroxocobalamin", 1, "mg", "im", "alternateDays", start, end, "completed")
    b.concept("plateau", b.after(start, 55))
    b.concept("maintenance_phase", b.after(end, 3), slug="phase")
    b.med("b12-maintenance", "hydroxocobalamin", 1, "mg", "im", "every2Months", b.after(end, 3))
    b.concept("recurrence", b.ago(rng.randint(3, 30)))


def _cov_maintenance_overdue(b: _Builder) -> None:
    """Maintenance recorded, the IM course stopped 4-12 months ago, neuro findings: overdue and discontinued."""
    rng = b.rng
    start = b.ago(rng.randint(500, 1200))
    end = b.after(start, 45)
    b.concept("numbness", b.ago((b.as_of - start).days + 20))
    b.concept("pernicious_anaemia", b.ago((b.as_of - start).days + 10))
    b.med("b12-loading", "hydroxocobalamin", 1, "mg", "im", "alternateDays", start, end, "completed")
    b.concept("maintenance_phase", b.after(end, 2), slug="phase")
    b.med("b12-maintenance", "hydroxocobalamin", 1, "mg", "im", "every3Months", b.after(end, 2), b.ago(rng.randint(120, 360)), "stopped")
    _b12_lab(b, "b12", rng.randint(250, 340), b.ago(rng.randint(5, 40)))


def _cov_premature_maintenance(b: _Builder) -> None:
    """Neuro findings, maintenance phase recorded without a plateau; cyanocobalamin IM with CKD."""
    rng = b.rng
    start = b.ago(rng.randint(60, 120))
    b.concept("polyneuropathy", b.ago((b.as_of - start).days + 40))
    _b12_lab(b, "b12", rng.randint(110, 170), b.ago((b.as_of - start).days + 3))
    b.concept("ckd3", b.ago(900), slug="ckd")
    b.lab("egfr", "egfr", b.ago(30), num(rng.randint(35, 55)), "mL/min/{1.73_m2}")
    b.med("b12-loading", "cyanocobalamin", 1000, "ug", "im", "daily", start, b.after(start, 14), "completed")
    b.concept("maintenance_phase", b.after(start, 15), slug="phase")
    b.med("b12-maintenance", "cyanocobalamin", 1000, "ug", "im", "monthly", b.after(start, 15))


def _cov_folate_first(b: _Builder) -> None:
    """Deficient, folic acid 5 mg started before B12, and a three-times-weekly course with paraesthesia."""
    rng = b.rng
    b.concept("paraesthesia", b.ago(rng.randint(20, 80)))
    _b12_lab(b, "b12", rng.randint(90, 170), b.ago(12))
    b.med("folic-acid", "folic_acid", 5, "mg", "oral", "daily", b.ago(rng.randint(30, 90)))
    start = b.ago(rng.randint(0, 1))
    b.med("b12-loading", "hydroxocobalamin", 1, "mg", "im", "threeTimesWeekly", start)
    b.lab("plt", "plt", b.ago(2), num(rng.randint(80, 130)), "10*9/L", flag="low")


def _cov_folate_alone(b: _Builder) -> None:
    """Indeterminate B12, folic acid 1 mg, no B12 therapy, no neuro findings."""
    rng = b.rng
    _b12_lab(b, "b12", rng.randint(200, 320), b.ago(rng.randint(10, 60)), unit="ng/L")
    b.med("folic-acid", "folic_acid", 1, "mg", "oral", "daily", b.ago(rng.randint(10, 200)))
    b.concept(rng.choice(("vegan", "vegetarian")), b.ago(1000), slug="diet")


def _cov_oral_mild(b: _Builder) -> None:
    """Peripheral neuropathy, indeterminate B12 and elevated MMA, metformin: oral vs IM, reversible cause."""
    rng = b.rng
    b.concept("peripheral_neuropathy", b.ago(rng.randint(20, 80)))
    b.concept("diabetes", b.ago(3000))
    b.med("metformin", "metformin", 1000, "mg", "oral", "daily", b.ago(rng.randint(400, 3000)))
    date = b.ago(rng.randint(5, 15))
    _b12_lab(b, "b12", rng.choice((180, 250, 300, 350)), date, exact=True)
    b.lab("mma", "mma", date, num(rng.uniform(0.5, 0.9), 2), "umol/L", flag="high")
    b.lab("hba1c", "hba1c", date, "7.2", "%")


def _cov_ileal_resection(b: _Builder) -> None:
    """Ileal resection > 20 cm on oral B12 with numbness: parenteral, monthly, oral-in-malabsorption."""
    rng = b.rng
    b.concept("crohns_ileum", b.ago(5000))
    b.concept("ileal_resection", b.ago(rng.randint(800, 3000)), length_cm=rng.randint(25, 60), length_as_observation=rng.random() < 0.5)
    b.concept("numbness", b.ago(rng.randint(20, 60)))
    _b12_lab(b, "b12", rng.randint(100, 170), b.ago(rng.randint(20, 40)))
    b.med("b12-oral", "cyanocobalamin", 1000, "ug", "oral", "daily", b.ago(rng.randint(5, 15)))


def _cov_gastrectomy_oral(b: _Builder) -> None:
    """Gastrectomy, deficient, sublingual B12 only, anticoagulant."""
    rng = b.rng
    b.concept("total_gastrectomy", b.ago(rng.randint(1000, 5000)), slug="gastrectomy")
    _b12_lab(b, "b12", rng.randint(80, 170), b.ago(rng.randint(20, 60)))
    b.med("anticoagulant", "apixaban", 5, "mg", "oral", "daily", b.ago(800))
    b.med("b12-oral", "cyanocobalamin", 1000, "ug", "sublingual", "daily", b.ago(rng.randint(5, 15)))


def _cov_sublingual_option(b: _Builder) -> None:
    """Deficient without neuro findings, needle phobia and warfarin, untreated."""
    rng = b.rng
    _b12_lab(b, "b12", rng.randint(100, 170), b.ago(rng.randint(3, 30)))
    b.concept("needle_phobia", b.ago(5000))
    b.med("anticoagulant", "warfarin", 5, "mg", "oral", "daily", b.ago(rng.randint(100, 2000)))
    b.med("ppi", "omeprazole", 20, "mg", "oral", "daily", b.ago(rng.randint(400, 2000)))


def _cov_normal_neuropathy(b: _Builder) -> None:
    """Painful diabetic neuropathy, normal B12 and MMA, no deficiency history, first-line agent failed."""
    rng = b.rng
    b.concept("dpn", b.ago(rng.randint(100, 900)))
    b.concept("neuropathic_pain", b.ago(rng.randint(30, 90)))
    date = b.ago(rng.randint(5, 30))
    _b12_lab(b, "b12", rng.choice((351, 480, 620)), date)
    b.lab("mma", "mma", date, "0.21", "umol/L", ref_high="0.40")
    b.med("pain", "duloxetine", 60, "mg", "oral", "daily", b.ago(rng.randint(100, 300)), b.ago(40), "stopped")
    b.concept("first_line_failed", b.ago(40), slug="pain-failed")
    b.med("pain", "pregabalin", 150, "mg", "oral", "daily", b.ago(38))


def _cov_b12_without_deficiency(b: _Builder) -> None:
    """Peripheral neuropathy with normal B12 and MMA, taking methylcobalamin anyway."""
    rng = b.rng
    b.concept(rng.choice(("peripheral_neuropathy", "polyneuropathy")), b.ago(rng.randint(100, 900)))
    date = b.ago(rng.randint(5, 60))
    _b12_lab(b, "b12", rng.randint(380, 800), date)
    b.lab("mma", "mma", date, num(rng.uniform(0.12, 0.3), 2), "umol/L", flag="normal")
    b.med("b12-supplement", "methylcobalamin", 1500, "ug", "oral", "daily", b.ago(rng.randint(20, 400)))


def _cov_parenteral_despite_normal(b: _Builder) -> None:
    """Earlier deficient result, now normal on oral cyanocobalamin, ataxia."""
    rng = b.rng
    start = b.ago(rng.randint(150, 600))
    b.concept("ataxia", b.ago((b.as_of - start).days + 30))
    _b12_lab(b, "b12", rng.randint(90, 160), b.ago((b.as_of - start).days + 7))
    _b12_lab(b, "b12", rng.randint(420, 900), b.ago(rng.randint(5, 40)))
    b.med("b12-oral", "cyanocobalamin", 2000, "ug", "oral", "daily", start)
    b.lab("hcy-followup", "hcy", b.ago(rng.randint(5, 40)), num(rng.uniform(10, 14), 1), "umol/L")


def _cov_functional(b: _Builder) -> None:
    """Normal B12 but raised homocysteine (functional deficiency), cognitive dysfunction, no work-up."""
    rng = b.rng
    b.concept("cognitive_dysfunction", b.ago(rng.randint(120, 400)))
    date = b.ago(rng.randint(5, 30))
    _b12_lab(b, "b12", rng.randint(360, 600), date)
    b.lab("hcy", "hcy", date, num(rng.uniform(18, 30), 1), "umol/L", flag="high")


def _cov_no_result_neuro(b: _Builder) -> None:
    """Vegan with paraesthesia for months and new muscle weakness, no B12 result."""
    rng = b.rng
    b.concept("vegan", b.ago(3000), slug="diet")
    b.concept("paraesthesia", b.ago(rng.randint(100, 300)))
    b.concept("muscle_weakness", b.ago(rng.randint(30, 90)))


def _cov_nonneuro_new(b: _Builder) -> None:
    """Pernicious anaemia just diagnosed, no neuro findings, therapy started yesterday."""
    rng = b.rng
    b.concept("pernicious_anaemia", b.ago(rng.randint(5, 20)))
    _b12_lab(b, "b12", rng.randint(60, 150), b.ago(rng.randint(5, 20)))
    b.med("b12-loading", "hydroxocobalamin", 1, "mg", "im", "threeTimesWeekly", b.ago(1))
    b.lab("potassium", "potassium", b.ago(0), num(rng.uniform(3.3, 4.4), 1), "mmol/L")


def _cov_pregnant_ckd(b: _Builder) -> None:
    """Pregnant, folic acid 5 mg, indeterminate active B12, CKD on cyanocobalamin."""
    rng = b.rng
    b.p.sex = "female"
    b.concept("pregnancy", b.ago(rng.randint(40, 200)))
    b.lab("holotc", "holotc", b.ago(rng.randint(5, 30)), num(rng.choice((25, 40, 70))), "pmol/L")
    b.med("folic-acid", "folic_acid", 5, "mg", "oral", "daily", b.ago(rng.randint(30, 200)))
    b.lab("egfr", "egfr", b.ago(20), num(rng.randint(40, 58)), "mL/min/{1.73_m2}")
    b.med("b12-oral", "cyanocobalamin", 1000, "ug", "oral", "daily", b.ago(rng.randint(10, 30)))


COVERAGE_PROFILES: list[tuple[str, Callable[[_Builder], None]]] = [
    ("thiamine deficiency with IV glucose (SAFETY-GLUCOSE-THIAMINE)", _cov_thiamine_glucose),
    ("high-dose vitamin C with bortezomib, CIPN (SAFETY-VITC-BORTEZOMIB, PAIN-CIPN-DULOXETINE)", _cov_vitc_bortezomib),
    ("recurrence under every-2-month maintenance (TX-MAINTENANCE-ESCALATE)", _cov_maintenance_escalate),
    ("stopped IM maintenance, pernicious anaemia (SAFETY-MAINTENANCE-OVERDUE, SAFETY-DISCONTINUED-LIFELONG)", _cov_maintenance_overdue),
    ("maintenance without plateau, cyanocobalamin with CKD (SAFETY-PREMATURE-MAINTENANCE, SAFETY-CYANOCOBALAMIN-RENAL)", _cov_premature_maintenance),
    ("folic acid before B12, three times weekly with paraesthesia (SAFETY-FOLATE-BEFORE-B12, SAFETY-NONNEURO-REGIMEN-IN-NEURO)", _cov_folate_first),
    ("indeterminate B12 with folic acid alone (SAFETY-FOLATE-WITHOUT-B12, SAFETY-FOLATE-DOSE)", _cov_folate_alone),
    ("neuropathy, indeterminate B12, raised MMA, metformin (TX-ORAL-MILD, CONFLICT-ORAL-VS-IM)", _cov_oral_mild),
    ("ileal resection over 20 cm on oral B12 (TX-ILEAL-RESECTION, SAFETY-ORAL-IN-MALABSORPTION)", _cov_ileal_resection),
    ("gastrectomy on sublingual B12 (TX-LIFELONG-IRREVERSIBLE, CONFLICT-ORAL-IN-MALABSORPTION)", _cov_gastrectomy_oral),
    ("deficient, needle phobia and warfarin (TX-SUBLINGUAL-OPTION, TX-REVERSIBLE-CAUSE)", _cov_sublingual_option),
    ("painful neuropathy with normal B12, first-line agent failed (TX-NO-B12-NORMAL-LEVELS, PAIN-SECOND-LINE)", _cov_normal_neuropathy),
    ("neuropathy with normal B12 on methylcobalamin (SAFETY-B12-WITHOUT-DEFICIENCY)", _cov_b12_without_deficiency),
    ("normal B12 on oral therapy after deficiency, ataxia (TX-PARENTERAL-DESPITE-NORMAL-LEVEL, MON-HOMOCYSTEINE-TARGET)", _cov_parenteral_despite_normal),
    ("raised homocysteine with normal B12 (DX-FUNCTIONAL-DEFICIENCY)", _cov_functional),
    ("vegan with neuro findings and no B12 result (DX-ORDER-B12, DX-NO-DELAY)", _cov_no_result_neuro),
    ("new pernicious anaemia, loading started yesterday (TX-PERNICIOUS-ANAEMIA-LIFELONG, MON-POTASSIUM-48H)", _cov_nonneuro_new),
    ("pregnant with folic acid, CKD on cyanocobalamin (TX-RENAL-FORM, SAFETY-CYANOCOBALAMIN-RENAL)", _cov_pregnant_ckd),
]


# --------------------------------------------------------------------------------------------
# The cohort
# --------------------------------------------------------------------------------------------


def patient_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"b12kg-synth:{seed}:{index}")


def generate_patient(index: int, seed: int = 1, as_of: dt.date = DEFAULT_AS_OF, *,
                     coverage_every: int = 25, width: int = 6) -> Patient:
    """Patient ``index`` (1-based) of the cohort of ``seed``: the same arguments give the same patient."""
    rng = patient_rng(seed, index)
    age, birth, sex = _demographics(rng, as_of)
    patient = Patient(index, f"p{index:0{width}d}", birth, sex)
    b = _Builder(rng, as_of, patient)
    if coverage_every > 0 and index % coverage_every == 0:
        label, build = COVERAGE_PROFILES[(index // coverage_every - 1) % len(COVERAGE_PROFILES)]
        patient.profile = label
        build(b)
    else:
        _natural(b, age)
    return patient


def generate(n: int, seed: int = 1, as_of: dt.date = DEFAULT_AS_OF, *, coverage_every: int = 25) -> Iterator[Patient]:
    """The cohort, one patient at a time (a generator: nothing is kept)."""
    width = max(6, len(str(n)))
    for index in range(1, n + 1):
        yield generate_patient(index, seed, as_of, coverage_every=coverage_every, width=width)


# --------------------------------------------------------------------------------------------
# RDF (Turtle, N-Triples)
# --------------------------------------------------------------------------------------------

# terms: ("iri", prefix, local) | ("date", iso) | ("num", text) | ("str", text)


def _b(local: str):
    return ("iri", "b12", local)


def _code_term(system: str, code: str):
    return ("iri", _CODE_PREFIX[system], code)


def _record_triples(rec: Record, subject) -> list[tuple]:
    item, coded = rec.item, rec.coded
    po: list[tuple] = []
    if isinstance(item, Lab):
        cls, loinc, _ = LABS[item.kind]
        if coded:
            code = _code_term(LOCAL, _LOCAL_LAB_CODES[item.kind]) if loinc is None else _code_term(LOINC, loinc)
            po += [(RDF_TYPE, _b("LabResult")), (B12 + "code", code)]
        else:
            po.append((RDF_TYPE, _b(cls)))
        po.append((B12 + "subject", subject))
        if item.value is not None:
            po += [(B12 + "value", ("num", item.value)), (B12 + "unit", ("str", item.unit))]
        if item.coded is not None:
            po.append((B12 + "resultValue", _b(item.coded)))
        po.append((B12 + "date", ("date", item.date.isoformat())))
        if item.flag is not None:
            po.append((B12 + "interpretation", _b(item.flag)))
        if item.ref_low is not None:
            po.append((B12 + "referenceLow", ("num", item.ref_low)))
        if item.ref_high is not None:
            po.append((B12 + "referenceHigh", ("num", item.ref_high)))
    elif isinstance(item, Concept):
        cls, system, code, _, resource = CONCEPTS[item.kind]
        if coded:
            base = {"Condition": "Condition", "Observation": "CodedObservation", "Procedure": "Procedure"}[resource]
            if item.kind in ("vegan", "vegetarian"):
                base = "CodedObservation"
            po += [(RDF_TYPE, _b(base)), (B12 + "code", _code_term(system, code))]
        else:
            po.append((RDF_TYPE, _b(cls)))
        po.append((B12 + "subject", subject))
        if resource == "Condition":
            po += [(B12 + "onset", ("date", item.date.isoformat())), (B12 + "clinicalStatus", _b("active"))]
        else:
            po.append((B12 + "date", ("date", item.date.isoformat())))
        if item.length_cm is not None:
            po.append((B12 + "resectedLengthCm", ("num", str(item.length_cm))))
    else:
        ind, system, code, _ = DRUGS[item.drug]
        route_ind, route_code, _ = ROUTES[item.route]
        po += [(RDF_TYPE, _b("MedicationUse")), (B12 + "subject", subject),
               (B12 + "drug", _code_term(system, code) if coded and system != LOCAL else _b(ind)),
               (B12 + "dose", ("num", item.dose)), (B12 + "doseUnit", ("str", item.unit)),
               (B12 + "route", _code_term(SCT, route_code) if coded else _b(route_ind)),
               (B12 + "frequency", _b(item.freq)), (B12 + "startDate", ("date", item.start.isoformat()))]
        if item.end is not None:
            po.append((B12 + "endDate", ("date", item.end.isoformat())))
        po.append((B12 + "status", _b(item.status)))
    return po


def patient_triples(p: Patient) -> list[tuple[tuple, list[tuple]]]:
    """(subject, [(predicate IRI, object term)]) for the patient and each record."""
    subject = ("iri", "syn", p.local)
    out = [(subject, [(RDF_TYPE, _b("Patient")), (B12 + "birthDate", ("date", p.birth.isoformat())),
                      (B12 + "sex", _b({"other": "otherSex", "unknown": "unknownSex"}.get(p.sex, p.sex)))])]
    for rec in p.records:
        out.append((("iri", "syn", f"{p.local}-{rec.name}"), _record_triples(rec, subject)))
    return out


def _ttl_term(t) -> str:
    kind = t[0]
    if kind == "iri":
        return f"{t[1]}:{t[2]}"
    if kind == "date":
        return f'"{t[1]}"^^xsd:date'
    if kind == "num":
        return t[1]
    return '"' + t[1].replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ttl_predicate(iri: str) -> str:
    if iri == RDF_TYPE:
        return "a"
    return "b12:" + iri[len(B12):]


def _nt_term(t, namespaces: dict[str, str]) -> str:
    kind = t[0]
    if kind == "iri":
        return f"<{namespaces[t[1]]}{t[2]}>"
    if kind == "date":
        return f'"{t[1]}"^^<{XSD}date>'
    if kind == "num":
        return f'"{t[1]}"^^<{XSD}{"decimal" if "." in t[1] else "integer"}>'
    return '"' + t[1].replace("\\", "\\\\").replace('"', '\\"') + '"'


def cohort_namespace(seed: int) -> str:
    return f"{SYNTH_BASE}s{seed}/"


def write_turtle(patients: Iterator[Patient], out: TextIO, *, seed: int, as_of: dt.date, n: int | None = None) -> int:
    """Write the cohort as Turtle, patient by patient; returns the number of triples written."""
    out.write(f"# b12kg synthetic cohort: seed {seed}, as of {as_of.isoformat()}"
              + (f", {n} patients" if n is not None else "") + " (reasoner/synth.py). Not real patients.\n")
    for prefix, ns in PREFIXES.items():
        out.write(f"@prefix {prefix}: <{ns}> .\n")
    out.write(f"@prefix syn: <{cohort_namespace(seed)}> .\n")
    count = 0
    for p in patients:
        lines = ["\n"]
        if p.profile:
            lines.append(f"# {p.local}: coverage profile: {p.profile}\n")
        for subject, po in patient_triples(p):
            parts = [f"{_ttl_predicate(pred)} {_ttl_term(obj)}" for pred, obj in po]
            lines.append(f"{_ttl_term(subject)} " + " ; ".join(parts) + " .\n")
            count += len(po)
        out.write("".join(lines))
    return count


def write_ntriples(patients: Iterator[Patient], out: TextIO, *, seed: int, as_of: dt.date, n: int | None = None) -> int:
    namespaces = dict(PREFIXES, syn=cohort_namespace(seed))
    count = 0
    for p in patients:
        lines = []
        for subject, po in patient_triples(p):
            s = _nt_term(subject, namespaces)
            for pred, obj in po:
                lines.append(f"{s} <{pred}> {_nt_term(obj, namespaces)} .\n")
        count += len(lines)
        out.write("".join(lines))
    return count


# --------------------------------------------------------------------------------------------
# FHIR R4 Bulk Data NDJSON
# --------------------------------------------------------------------------------------------

FHIR_FILES = ("Patient", "Observation", "Condition", "MedicationStatement", "Procedure")


def _cc(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _number(text: str):
    return float(text) if "." in text else int(text)


def _quantity(value: str, unit: str) -> dict:
    return {"value": _number(value), "unit": unit, "system": UCUM, "code": unit}


_LAB_CATEGORY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory", "display": "Laboratory"}]}]
_CLINICAL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active", "display": "Active"}]}
_VERIFIED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed", "display": "Confirmed"}]}


def fhir_resources(p: Patient, seed: int) -> list[tuple[str, dict]]:
    """(resource type, resource) for the patient and its records."""
    pid = f"s{seed}-{p.local}"
    subject = {"reference": f"Patient/{pid}"}
    out: list[tuple[str, dict]] = [("Patient", {
        "resourceType": "Patient", "id": pid,
        "identifier": [{"system": cohort_namespace(seed), "value": p.local}],
        "gender": p.sex, "birthDate": p.birth.isoformat()})]
    for rec in p.records:
        rid = f"{pid}-{rec.name}"
        item = rec.item
        if isinstance(item, Lab):
            cls, loinc, display = LABS[item.kind]
            code = _cc(LOCAL, _LOCAL_LAB_CODES[item.kind], display) if loinc is None else _cc(LOINC, loinc, display)
            r = {"resourceType": "Observation", "id": rid, "status": "final", "category": _LAB_CATEGORY,
                 "code": code, "subject": subject, "effectiveDateTime": item.date.isoformat()}
            if item.value is not None:
                r["valueQuantity"] = _quantity(item.value, item.unit)
            if item.coded is not None:
                c, d = _CODED_VALUES[item.coded]
                r["valueCodeableConcept"] = _cc(SCT, c, d)
            if item.flag is not None:
                c, d = {"abnormal": ("A", "Abnormal")}.get(item.flag) or _FLAGS[item.flag]
                r["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                                    "code": c, "display": d}]}]
            if item.ref_low is not None or item.ref_high is not None:
                rr = {}
                if item.ref_low is not None:
                    rr["low"] = _quantity(item.ref_low, item.unit)
                if item.ref_high is not None:
                    rr["high"] = _quantity(item.ref_high, item.unit)
                r["referenceRange"] = [rr]
            out.append(("Observation", r))
        elif isinstance(item, Concept):
            cls, system, code, display, resource = CONCEPTS[item.kind]
            if resource == "Condition":
                out.append(("Condition", {
                    "resourceType": "Condition", "id": rid, "clinicalStatus": _CLINICAL, "verificationStatus": _VERIFIED,
                    "code": _cc(system, code, display), "subject": subject, "onsetDateTime": item.date.isoformat()}))
            elif resource == "Observation":
                out.append(("Observation", {
                    "resourceType": "Observation", "id": rid, "status": "final", "code": _cc(system, code, display),
                    "subject": subject, "effectiveDateTime": item.date.isoformat()}))
            else:
                r = {"resourceType": "Procedure", "id": rid, "status": "completed", "code": _cc(system, code, display),
                     "subject": subject, "performedDateTime": item.date.isoformat()}
                if item.length_cm is not None and not item.length_as_observation:
                    r["extension"] = [{"url": RESECTED_LENGTH_EXTENSION,
                                       "valueQuantity": _quantity(str(item.length_cm), "cm")}]
                out.append(("Procedure", r))
                if item.length_cm is not None and item.length_as_observation:
                    out.append(("Observation", {
                        "resourceType": "Observation", "id": f"{rid}-length", "status": "final",
                        "code": _cc(LOCAL, "ileal-resection-length", "Length of ileum resected"),
                        "subject": subject, "partOf": [{"reference": f"Procedure/{rid}"}],
                        "effectiveDateTime": item.date.isoformat(),
                        "valueQuantity": _quantity(str(item.length_cm), "cm")}))
        else:
            _, system, code, display = DRUGS[item.drug]
            _, route_code, route_display = ROUTES[item.route]
            timing = FREQUENCIES[item.freq]
            repeat = {"count": 1} if timing is None else {"frequency": timing[0], "period": timing[1], "periodUnit": timing[2]}
            period = {"start": item.start.isoformat()}
            if item.end is not None:
                period["end"] = item.end.isoformat()
            out.append(("MedicationStatement", {
                "resourceType": "MedicationStatement", "id": rid, "status": item.status,
                "medicationCodeableConcept": _cc(system, code, display), "subject": subject,
                "effectivePeriod": period,
                "dosage": [{"text": f"{item.dose} {item.unit} {ROUTES[item.route][0]} {_FREQ_TEXT[item.freq]}",
                            "timing": {"repeat": repeat}, "route": _cc(SCT, route_code, route_display),
                            "doseAndRate": [{"doseQuantity": _quantity(item.dose, item.unit)}]}]}))
    return out


def write_fhir_ndjson(patients: Iterator[Patient], directory: str | Path, *, seed: int) -> dict[str, int]:
    """Write the cohort as Bulk Data NDJSON files (one per resource type); returns counts per type."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {t: open(directory / f"{t}.ndjson", "w", encoding="utf-8", newline="\n") for t in FHIR_FILES}
    counts = dict.fromkeys(FHIR_FILES, 0)
    try:
        for p in patients:
            for rtype, resource in fhir_resources(p, seed):
                files[rtype].write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")
                counts[rtype] += 1
    finally:
        for f in files.values():
            f.close()
    return counts


def write(fmt: str, n: int, seed: int, as_of: dt.date, output, *, coverage_every: int = 25):
    """Generate ``n`` patients and write them in ``fmt`` to ``output`` (a text stream, or a directory for FHIR)."""
    patients = generate(n, seed, as_of, coverage_every=coverage_every)
    if fmt == "turtle":
        return write_turtle(patients, output, seed=seed, as_of=as_of, n=n)
    if fmt == "ntriples":
        return write_ntriples(patients, output, seed=seed, as_of=as_of, n=n)
    if fmt == "fhir-ndjson":
        return write_fhir_ndjson(patients, output, seed=seed)
    raise ValueError(f"unknown format '{fmt}' (use {', '.join(FORMATS)})")
