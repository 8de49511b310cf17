"""The Label Studio mapping without a database, checked by label-studio-sdk's own parser.

`LabelInterface` is the SDK's parser of labeling configs; it validates a config against LS's
config schema (`validate`) and an annotation's or prediction's regions against the config
(`validate_annotation`, `validate_prediction`: control and object names, region type, choice
and label values, box geometry in percent). Every config and region we write goes through it.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from label_studio_sdk.label_interface import LabelInterface

from services.tasks.interop.label_studio import (
    LabelStudioUnsupported,
    Layout,
    RegionProblem,
    answer_of,
    chosen_annotation,
    config_xml,
    from_percent,
    image_size,
    layout_for,
    object_for,
    result_of,
    to_percent,
)

FREE_FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "topic": {"enum": ["sport", "politics"]},
        "tags": {"type": "array", "items": {"enum": ["short", "long"]}},
    },
    "required": ["summary"],
}

# (project settings, first task input, an answer of that project)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "classification": (
        {"task_type": "classification", "labels": ["cat", 'dog & "<bird>"']},
        {"image_url": "https://img.example/1.jpg"},
        {"label": 'dog & "<bird>"'},
    ),
    "multi_label": (
        {"task_type": "classification", "labels": ["red", "green", "blue"], "multi_label": True},
        {"text": "a red and green flag"},
        {"labels": ["red", "green"]},
    ),
    "sentiment": ({"task_type": "sentiment"}, {"text": "great!"}, {"label": "positive"}),
    "transcription": (
        {"task_type": "transcription"},
        {"audio_url": "https://audio.example/1.wav"},
        {"text": "first line\nsecond line"},
    ),
    "bounding_box": (
        {"task_type": "bounding_box", "labels": ["car", "person"]},
        {"image_url": "https://img.example/2.jpg", "width": 640, "height": 480},
        {
            "boxes": [
                {"label": "car", "x": 0.1, "y": 0.2, "width": 0.3, "height": 0.35},
                {"label": "person", "x": 0.0, "y": 0.5, "width": 1.0, "height": 0.5},
            ]
        },
    ),
    "free_form": (
        {"task_type": "free_form", "answer_schema": FREE_FORM_SCHEMA},
        {"text": "an article"},
        {"summary": "about a match", "topic": "sport", "tags": ["short"]},
    ),
}


def _layout(settings: dict[str, Any], sample: dict[str, Any] | None) -> Layout:
    return layout_for(
        task_type=settings["task_type"],
        labels=settings.get("labels"),
        multi_label=settings.get("multi_label", False),
        answer_schema=settings.get("answer_schema"),
        sample_input=sample,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_config_and_regions_pass_the_sdk_and_map_back(case: str) -> None:
    settings, sample, answer = CASES[case]
    layout = _layout(settings, sample)
    interface = LabelInterface(config_xml(layout, title="Project <1> & co"))
    interface.validate()  # LS's config schema, unique names, toName targets, tag attributes
    regions = result_of(layout, answer, size=image_size(sample))
    assert regions
    assert interface.validate_annotation({"result": regions})
    assert (
        interface.validate_prediction({"result": regions, "score": 0.5}, return_errors=True) == []
    )
    assert answer_of(layout, regions) == answer


def test_object_tag_follows_the_input() -> None:
    assert object_for("bounding_box", {"caption": "x", "image": "u"}) == ("Image", "image")
    assert object_for("bounding_box", {"photo": "u"}) == ("Image", "photo")
    assert object_for("bounding_box", None) == ("Image", "image_url")
    assert object_for("transcription", {"image_url": "u"}) == ("Image", "image_url")
    assert object_for("transcription", {}) == ("Audio", "audio_url")
    assert object_for("classification", {"text": "t", "image_url": "u"}) == ("Image", "image_url")
    assert object_for("sentiment", {"review": "t", "stars": 3}) == ("Text", "review")
    # a key LS cannot name as `$key` is never chosen
    assert object_for("sentiment", {"the review": "t"}) == ("Text", "text")


def test_box_regions_carry_the_image_size_when_the_input_has_it() -> None:
    settings, sample, answer = CASES["bounding_box"]
    layout = _layout(settings, sample)
    with_size = result_of(layout, answer, size=image_size(sample))
    assert with_size[0]["original_width"] == 640 and with_size[0]["original_height"] == 480
    assert with_size[0]["value"] == {
        "x": 10.0,
        "y": 20.0,
        "width": 30.0,
        "height": 35.0,
        "rotation": 0,
        "rectanglelabels": ["car"],
    }
    assert "original_width" not in result_of(layout, answer, size=None)[0]
    assert image_size({"image_width": 10, "image_height": 20}) == (10, 20)
    assert image_size({"width": 10.5, "height": 20}) is None
    assert image_size({"width": True, "height": 20}) is None


@given(st.decimals(min_value=0, max_value=1, places=15, allow_nan=False))
def test_percent_round_trips_exactly_up_to_15_digits(fraction: Decimal) -> None:
    value = float(fraction)
    assert from_percent(to_percent(value)) == value


@given(st.floats(min_value=0, max_value=100, allow_nan=False) | st.integers(0, 100))
def test_percent_is_the_shortest_decimal_shifted(value: float) -> None:
    """What `to_percent`/`from_percent` promise: the decimal point of the shortest repr
    moved, rounded once (Decimal is the reference)."""
    assert to_percent(value) == float(Decimal(repr(value)).scaleb(2))
    assert from_percent(value) == float(Decimal(repr(value)).scaleb(-2))


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_percent_round_trips_within_an_ulp_or_so(fraction: float) -> None:
    """Percent floats are coarser than fractions in part of [0, 1] (100x needs ~6.6 more bits),
    so a 16-17 digit fraction may come back a unit in the last place away."""
    assert abs(from_percent(to_percent(fraction)) - fraction) <= 2 * math.ulp(fraction or 1e-300)


def test_label_free_boxes_list_the_labels_used() -> None:
    layout = layout_for(
        task_type="bounding_box",
        labels=None,
        multi_label=False,
        answer_schema=None,
        sample_input={"image_url": "u"},
        box_labels=["tree", "house"],
    )
    interface = LabelInterface(config_xml(layout))
    box = {"label": "tree", "x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2}
    assert interface.validate_annotation({"result": result_of(layout, {"boxes": [box]})})
    unknown = {**box, "label": "car"}
    assert not interface.validate_annotation({"result": result_of(layout, {"boxes": [unknown]})})


def test_free_form_without_a_label_studio_form_is_refused_naming_what_fits() -> None:
    schema = {
        "type": "object",
        "properties": {"note": {"type": "string"}, "score": {"type": "integer"}},
    }
    with pytest.raises(LabelStudioUnsupported) as info:
        _layout({"task_type": "free_form", "answer_schema": schema}, None)
    assert info.value.status == 422 and info.value.code == "label_studio_unsupported"
    assert "classification, sentiment, transcription and bounding_box" in info.value.detail
    assert info.value.errors == [
        {"loc": ["answer_schema", "properties", "score"], "msg": "no Label Studio control"}
    ]


def test_import_reads_label_studio_templates_own_names() -> None:
    """An export of a project made from LS's own templates: other control names, capitalised
    sentiment, several text lines; mapped by region type when the layout has one control."""
    sentiment = _layout({"task_type": "sentiment"}, None)
    result = [
        {
            "from_name": "sentiment",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": ["Positive"]},
        }
    ]
    assert answer_of(sentiment, result) == {"label": "positive"}
    transcription = _layout({"task_type": "transcription"}, None)
    lines = [{"from_name": "t", "to_name": "a", "type": "textarea", "value": {"text": ["a", "b"]}}]
    assert answer_of(transcription, lines) == {"text": "a\nb"}
    one = [{"from_name": "t", "to_name": "a", "type": "textarea", "value": {"text": "plain"}}]
    assert answer_of(transcription, one) == {"text": "plain"}
    boxes = _layout({"task_type": "bounding_box", "labels": ["Car"]}, None)
    region = {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 12.5, "y": 50, "width": 25, "height": 10, "rectanglelabels": ["car"]},
    }
    assert answer_of(boxes, [region]) == {
        "boxes": [{"label": "Car", "x": 0.125, "y": 0.5, "width": 0.25, "height": 0.1}]
    }
    assert answer_of(boxes, []) == {"boxes": []}  # an image with nothing on it


@pytest.mark.parametrize(
    ("case", "result", "message"),
    [
        ("classification", [], "no choices region for 'label'"),
        ("classification", "oops", "result must be a list of regions"),
        (
            "classification",
            [{"from_name": "label", "type": "choices", "value": {"choices": ["cat", "dog"]}}],
            "result[0] picks 2 choices; one is expected",
        ),
        (
            "classification",
            [{"from_name": "label", "type": "choices", "value": {}}],
            "result[0].value.choices is required",
        ),
        (
            "bounding_box",
            [
                {
                    "type": "rectanglelabels",
                    "value": {
                        "x": 1,
                        "y": 1,
                        "width": 5,
                        "height": 5,
                        "rotation": 30,
                        "rectanglelabels": ["car"],
                    },
                }
            ],
            "result[0] is rotated (30); boxes here are axis-aligned",
        ),
        (
            "bounding_box",
            [
                {
                    "type": "rectanglelabels",
                    "value": {
                        "x": "1",
                        "y": 1,
                        "width": 5,
                        "height": 5,
                        "rectanglelabels": ["car"],
                    },
                }
            ],
            "result[0].value.x must be a number (percent)",
        ),
    ],
)
def test_import_names_what_is_wrong_in_a_result(case: str, result: Any, message: str) -> None:
    settings, _, _ = CASES[case]
    with pytest.raises(RegionProblem) as info:
        answer_of(_layout(settings, None), result)
    assert str(info.value) == message


def test_which_annotation_becomes_gold() -> None:
    worker = {"result": ["w"]}
    skipped = {"result": ["s"], "was_cancelled": True}
    truth = {"result": ["t"], "ground_truth": True}
    cancelled_truth = {"result": ["ct"], "ground_truth": True, "was_cancelled": True}
    assert chosen_annotation([worker, truth], "ground_truth") == (1, truth)
    assert chosen_annotation([worker, truth], "first") == (1, truth)
    assert chosen_annotation([skipped, worker], "first") == (1, worker)
    assert chosen_annotation([skipped, worker], "ground_truth") is None
    assert chosen_annotation([cancelled_truth, worker], "ground_truth") is None
    assert chosen_annotation([worker, truth], "none") is None
    assert chosen_annotation([], "first") is None


def test_a_free_form_property_named_like_the_object_renames_the_object() -> None:
    schema = {"type": "object", "properties": {"input": {"type": "string"}}}
    layout = _layout({"task_type": "free_form", "answer_schema": schema}, {"text": "t"})
    interface = LabelInterface(config_xml(layout))
    interface.validate()
    regions = result_of(layout, {"input": "typed"})
    assert regions[0]["from_name"] == "input" and regions[0]["to_name"] == "input_object"
    assert interface.validate_annotation({"result": regions})
    assert answer_of(layout, regions) == {"input": "typed"}
