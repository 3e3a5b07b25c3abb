"""The diagnosis model survives every odd shape in tests/fixtures/diagnosis_*.json.

The fixtures start from the API page's own example (made valid JSON) and grow with each shape the
service, or its documentation, has shown. The client-level twin of this file is
test_client_models.py, which serves the same fixtures through the simulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.flink.models import Envelope, JobDiagnosis

FIXTURES = Path(__file__).parent / "fixtures"

# file -> (riskLevel, healthScore, diagnoseTime, symptom count per category)
PAGE_COUNTS = {"startup": 1, "runtime": 1, "autopilot": 1}
EXPECTED: dict[str, tuple[str | None, int | None, int | None, dict[str, int]]] = {
    "diagnosis_page_example.json": ("RISK_LEVEL_LOW", None, 1740389560871, PAGE_COUNTS),
    "diagnosis_null_symptoms.json": ("RISK_LEVEL_HIGH", 42, 1740389560871, {"runtime": 1}),
    "diagnosis_no_autopilot.json": ("RISK_LEVEL_MID", None, 1740389560871, {"troubleshooting": 1}),
    "diagnosis_extra_fields.json": ("RISK_LEVEL_LOW", 95, 1740389560871, {"startup": 1}),
    "diagnosis_unknown_risk.json": ("RISK_LEVEL_CRITICAL", 5, None, {"others": 1}),
    "diagnosis_health_score_string.json": ("RISK_LEVEL_MID", 87, 1740389560871, {"state": 1}),
    "diagnosis_empty_data.json": (None, None, None, {}),
    "diagnosis_odd_shapes.json": (None, None, None, {"startup": 1, "runtime": 1, "autopilot": 1}),
}


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_every_fixture_has_expectations() -> None:
    assert {p.name for p in FIXTURES.glob("diagnosis_*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_diagnosis(name: str) -> None:
    risk, health, when, counts = EXPECTED[name]
    env = Envelope[JobDiagnosis].model_validate(load(name))
    assert env.success is True
    d = env.data
    assert d is not None
    assert (d.risk_level, d.health_score, d.diagnose_time) == (risk, health, when)
    got = {k: len(v) for k, v in d.symptoms.by_category().items() if v}
    assert got == counts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_round_trips(name: str) -> None:
    d = Envelope[JobDiagnosis].model_validate(load(name)).data
    assert d is not None
    again = JobDiagnosis.model_validate(json.loads(json.dumps(d.to_wire())))
    assert again == d


def test_page_example_keeps_documented_text() -> None:
    env = Envelope[JobDiagnosis].model_validate(load("diagnosis_page_example.json"))
    assert env.request_id == "CBC799F0-AS7S-1D30-8A4F-882ED4DD****"
    # The page's errorCode is the two characters `""` on a success; it must not read as an error.
    assert env.error_code == '""'
    d = env.data
    assert d is not None
    assert d.symptoms.autopilot is not None
    assert d.symptoms.autopilot.recommendation == "Increase the JobManager memory from 1 GiB to 4 GiB"
    assert d.namespace == "default-namespace-*****"


def test_extra_fields_survive_round_trip() -> None:
    d = Envelope[JobDiagnosis].model_validate(load("diagnosis_extra_fields.json")).data
    assert d is not None
    wire = d.to_wire()
    assert wire["engineHint"] == "vvr-8.0.9"
    assert wire["symptoms"]["startup"][0]["severity"] == "minor"
    assert "gpu" in wire["symptoms"]


def test_free_text_is_kept_verbatim() -> None:
    d = Envelope[JobDiagnosis].model_validate(load("diagnosis_health_score_string.json")).data
    assert d is not None
    text = d.symptoms.state[0]
    assert "数据倾斜" in text.description
    assert "<script>alert(1)</script> & *bold*" in text.recommendation


def test_odd_shapes_are_coerced_not_rejected() -> None:
    d = Envelope[JobDiagnosis].model_validate(load("diagnosis_odd_shapes.json")).data
    assert d is not None
    assert d.symptoms.autopilot is not None and d.symptoms.autopilot.name == "Autopilot as list"
    assert d.symptoms.startup[0].name == "Single object"
    assert d.symptoms.runtime[0].description == "12"
    assert d.symptoms.troubleshooting == []
