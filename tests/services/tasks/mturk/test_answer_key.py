"""QuestionForm + AnswerKey XML as a native scored test: the conversion, and the native scoring
of what it produces (AnswerOption, DefaultScore and the three QualificationValueMappings)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.tasks.mturk.answer_key import native_test
from services.tasks.mturk.errors import MTurkRequestError
from services.workers.attempts.scoring import score
from services.workers.qualification_types.schemas import AnswerKey, consistency_errors
from services.workers.qualification_types.schemas import Test as NativeTestModel
from tests.services.tasks.mturk.question_samples import ANSWER_KEY, SCHEMAS, TEST_FORM


def key_xml(questions: str, mapping: str = "") -> str:
    return f'<AnswerKey xmlns="{SCHEMAS}/2005-10-01/AnswerKey.xsd">{questions}{mapping}</AnswerKey>'


Q1_Q2 = (
    "<Question><QuestionIdentifier>q1</QuestionIdentifier><AnswerOption>"
    "<SelectionIdentifier>robin</SelectionIdentifier><AnswerScore>3</AnswerScore></AnswerOption>"
    "</Question><Question><QuestionIdentifier>q2</QuestionIdentifier><AnswerOption>"
    "<SelectionIdentifier>crow</SelectionIdentifier><SelectionIdentifier>bee</SelectionIdentifier>"
    "<AnswerScore>4</AnswerScore></AnswerOption><DefaultScore>1</DefaultScore></Question>"
)


def scored(key: str, answers: dict[str, Any]) -> tuple[int, int, int]:
    converted = native_test(TEST_FORM, duration_seconds=300, answer_key_xml=key)
    test = NativeTestModel.model_validate(converted.test)
    answer_key = AnswerKey.model_validate(converted.answer_key)
    assert consistency_errors(test, answer_key, auto_grant=False) == []
    return score(test.questions, answer_key, answers)


def test_conversion() -> None:
    converted = native_test(TEST_FORM, duration_seconds=600, answer_key_xml=ANSWER_KEY)
    assert converted.test["duration_seconds"] == 600
    assert [q["kind"] for q in converted.test["questions"]] == [
        "single_choice",
        "multiple_choice",
        "text",
    ]
    assert converted.answer_key == {
        "answers": {
            "q1": {"options": [{"selections": ["robin"], "score": 10}]},
            "q2": {
                "options": [
                    {"selections": ["crow", "bee"], "score": 10},
                    {"selections": ["crow"], "score": 5},
                ],
                "default_score": 1,
            },
        },
        "mapping": "percentage",
        "maximum_score": 20,
    }
    assert native_test(TEST_FORM, duration_seconds=60, answer_key_xml=None).answer_key is None


def test_no_mapping_is_the_summed_score() -> None:
    assert scored(key_xml(Q1_Q2), {"q1": "robin", "q2": ["bee", "crow"]}) == (7, 7, 7)
    assert scored(key_xml(Q1_Q2), {"q1": "bat", "q2": ["crow"]}) == (1, 7, 1)


def test_percentage_mapping_defaults_to_nothing_but_its_maximum() -> None:
    mapping = (
        "<QualificationValueMapping><PercentageMapping><MaximumSummedScore>8"
        "</MaximumSummedScore></PercentageMapping></QualificationValueMapping>"
    )
    assert scored(key_xml(Q1_Q2, mapping), {"q1": "robin", "q2": ["crow", "bee"]})[2] == 88  # 7/8


def test_scale_mapping() -> None:
    mapping = (
        "<QualificationValueMapping><ScaleMapping><SummedScoreMultiplier>2.5"
        "</SummedScoreMultiplier></ScaleMapping></QualificationValueMapping>"
    )
    assert scored(key_xml(Q1_Q2, mapping), {"q1": "robin", "q2": ["crow", "bee"]})[2] == 18
    assert scored(key_xml(Q1_Q2, mapping), {"q1": "robin"})[2] == 10  # (3 + 1) * 2.5


def test_range_mapping() -> None:
    mapping = (
        "<QualificationValueMapping><RangeMapping>"
        "<SummedScoreRange><InclusiveLowerBound>0</InclusiveLowerBound>"
        "<InclusiveUpperBound>3</InclusiveUpperBound><QualificationValue>10</QualificationValue>"
        "</SummedScoreRange>"
        "<SummedScoreRange><InclusiveLowerBound>6</InclusiveLowerBound>"
        "<InclusiveUpperBound>7</InclusiveUpperBound><QualificationValue>90</QualificationValue>"
        "</SummedScoreRange>"
        "<OutOfRangeQualificationValue>-1</OutOfRangeQualificationValue>"
        "</RangeMapping></QualificationValueMapping>"
    )
    key = key_xml(Q1_Q2, mapping)
    assert scored(key, {"q2": ["bee"]})[2] == 10  # 1
    assert scored(key, {"q1": "robin", "q2": ["crow"]})[2] == -1  # 4: no range
    assert scored(key, {"q1": "robin", "q2": ["crow", "bee"]})[2] == 90  # 7


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        (key_xml(Q1_Q2.replace(">q2<", ">q9<")), "which is not in the Test"),
        (key_xml(Q1_Q2.replace(">q2<", ">why<")), "not a SelectionAnswer"),
        (key_xml(Q1_Q2.replace("<AnswerScore>3", "<AnswerScore>x3")), "not a valid value"),
        (key_xml(""), "One of '{Question}' is expected"),
        (key_xml(Q1_Q2 + Q1_Q2), "twice"),
        (
            key_xml(
                Q1_Q2,
                "<QualificationValueMapping><RangeMapping><SummedScoreRange><InclusiveLowerBound>5"
                "</InclusiveLowerBound><InclusiveUpperBound>1</InclusiveUpperBound>"
                "<QualificationValue>1</QualificationValue></SummedScoreRange>"
                "<OutOfRangeQualificationValue>0</OutOfRangeQualificationValue></RangeMapping>"
                "</QualificationValueMapping>",
            ),
            "above its upper bound",
        ),
        (
            key_xml(Q1_Q2, "<QualificationValueMapping/>"),
            "exactly one of",
        ),
        (Q1_Q2.split("</Question>")[0] + "</Question>", "declaration of element 'Question'"),
        ('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "not allowed"),
    ],
)
def test_answer_key_refusals(key: str, fragment: str) -> None:
    with pytest.raises(MTurkRequestError) as caught:
        native_test(TEST_FORM, duration_seconds=60, answer_key_xml=key)
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("test", "duration", "fragment"),
    [
        (TEST_FORM, None, "TestDurationInSeconds is required"),
        (TEST_FORM, 86_401, "between 1 and 86400"),
        (TEST_FORM.replace(">q1<", ">q 1<"), 60, "identifiers of test questions"),
        (
            TEST_FORM.replace(
                "<FreeTextAnswer/>",
                "<FileUploadAnswer><MaxFileSizeInBytes>9</MaxFileSizeInBytes><MinFileSizeInBytes>1</MinFileSizeInBytes></FileUploadAnswer>",
            ),
            60,
            "FileUploadAnswer is not supported",
        ),
    ],
)
def test_test_refusals(test: str, duration: int | None, fragment: str) -> None:
    with pytest.raises(MTurkRequestError) as caught:
        native_test(test, duration_seconds=duration, answer_key_xml=None)
    assert fragment in caught.value.message


def test_native_answer_key_rules() -> None:
    with pytest.raises(ValidationError, match="either correct or options"):
        AnswerKey.model_validate({"answers": {"q": {"score": 1}}})
    with pytest.raises(ValidationError, match="needs a multiplier"):
        AnswerKey.model_validate({"answers": {"q": {"correct": "x"}}, "mapping": "scale"})
    with pytest.raises(ValidationError, match="must not overlap"):
        AnswerKey.model_validate(
            {
                "answers": {"q": {"correct": "x"}},
                "mapping": "range",
                "ranges": [{"low": 0, "high": 5, "value": 1}, {"low": 5, "high": 9, "value": 2}],
                "out_of_range_value": 0,
            }
        )
    with pytest.raises(ValidationError, match="does not go with mapping 'sum'"):
        AnswerKey.model_validate(
            {"answers": {"q": {"correct": "x"}}, "mapping": "sum", "multiplier": 2}
        )
    plain = AnswerKey.model_validate({"answers": {"q": {"correct": "x", "score": 2}}})
    assert plain.model_dump(mode="json") == {
        "answers": {"q": {"correct": "x", "score": 2}},
        "mapping": "percentage",
    }
