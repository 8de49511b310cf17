"""The qualification ops' output shapes: timestamps as datetimes (sent as epoch seconds by the
protocol layer), values by type (LocaleValue for the locale type)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.tasks.mturk.operations.qualifications import (
    qualification_shape,
    qualification_type_shape,
)

ROW = {
    "id": "01M920DRC1QW34STDP7EPWZ31W",
    "created_at": "2026-12-05T02:31:29.123456Z",
    "name": "Birds",
    "description": "Knows birds.",
    "keywords": ["birds", "ornithology"],
    "status": "inactive",
    "test": {"questions": [], "duration_seconds": 600},
    "auto_grant": False,
    "auto_grant_value": 1,
    "mturk_test": "<QuestionForm/>",
    "mturk_answer_key": None,
    "retry_delay_seconds": None,
}


def test_qualification_type_shape() -> None:
    assert qualification_type_shape(ROW) == {
        "QualificationTypeId": ROW["id"],
        "CreationTime": datetime(2026, 12, 5, 2, 31, 29, 123456, tzinfo=UTC),
        "Name": "Birds",
        "Description": "Knows birds.",
        "Keywords": "birds, ornithology",
        "QualificationTypeStatus": "Inactive",
        "IsRequestable": True,
        "AutoGranted": False,
        "TestDurationInSeconds": 600,
        "Test": "<QuestionForm/>",
    }
    auto = qualification_type_shape(
        {**ROW, "test": None, "mturk_test": None, "auto_grant": True, "retry_delay_seconds": 0}
    )
    assert auto["AutoGrantedValue"] == 1 and auto["RetryDelayInSeconds"] == 0
    assert "Test" not in auto and "TestDurationInSeconds" not in auto


def test_qualification_shape() -> None:
    granted = qualification_shape(
        {
            "qualification_type_id": "Q1",
            "worker_id": "01W",
            "value": 7,
            "status": "revoked",
            "granted_at": "2026-12-05T02:31:29Z",
        }
    )
    assert granted == {
        "QualificationTypeId": "Q1",
        "WorkerId": "A01W",
        "Status": "Revoked",
        "GrantTime": datetime(2026, 12, 5, 2, 31, 29, tzinfo=UTC),
        "IntegerValue": 7,
    }
    locale = qualification_shape(
        {
            "qualification_type_id": "00000000000000000071",
            "worker_id": "01W",
            "value": "DE",
            "status": "granted",
            "granted_at": None,
        }
    )
    assert locale == {
        "QualificationTypeId": "00000000000000000071",
        "WorkerId": "A01W",
        "Status": "Granted",
        "LocaleValue": {"Country": "DE"},
    }
