"""The majority vote on its own: statuses that vote, ties, multi-label sets, other types."""

from __future__ import annotations

from typing import Any

from services.tasks.results.aggregate import WorkerAnswer, aggregator_for


def _answers(*items: tuple[Any, str]) -> list[WorkerAnswer]:
    return [
        WorkerAnswer(f"A{i}", f"W{i}", answer, status) for i, (answer, status) in enumerate(items)
    ]


def test_majority_counts_approved_and_submitted_only() -> None:
    vote = aggregator_for(task_type="classification", labels=["cat", "dog"], multi_label=False)
    result = vote.aggregate(
        _answers(
            ({"label": "dog"}, "approved"),
            ({"label": "dog"}, "submitted"),
            ({"label": "cat"}, "submitted"),
            ({"label": "cat"}, "rejected"),
            ({"label": "cat"}, "rejected"),
        )
    )
    assert result.answer == {"label": "dog"} and result.agreement == 0.67


def test_ties_go_to_the_earlier_label_whatever_the_answer_order() -> None:
    vote = aggregator_for(task_type="classification", labels=["b", "a", "c"], multi_label=False)
    for order in (("a", "b"), ("b", "a")):
        result = vote.aggregate(_answers(*(({"label": x}, "submitted") for x in order)))
        assert result.answer == {"label": "b"} and result.agreement == 0.5


def test_multi_label_votes_on_sets() -> None:
    vote = aggregator_for(task_type="classification", labels=["x", "y", "z"], multi_label=True)
    result = vote.aggregate(
        _answers(
            ({"labels": ["y", "x"]}, "approved"),
            ({"labels": ["x", "y"]}, "submitted"),
            ({"labels": ["x"]}, "submitted"),
        )
    )
    assert result.answer == {"labels": ["x", "y"]} and result.agreement == 0.67


def test_sentiment_and_no_votes() -> None:
    vote = aggregator_for(task_type="sentiment", labels=None, multi_label=False)
    assert vote.aggregate([]).answer is None and vote.aggregate([]).agreement is None
    only_rejected = vote.aggregate(_answers(({"label": "positive"}, "rejected")))
    assert only_rejected.answer is None
    unanimous = vote.aggregate(_answers(({"label": "neutral"}, "approved")))
    assert unanimous.answer == {"label": "neutral"} and unanimous.agreement == 1.0


def test_other_types_have_no_aggregate() -> None:
    for task_type in ("transcription", "bounding_box", "free_form"):
        vote = aggregator_for(task_type=task_type, labels=None, multi_label=False)
        result = vote.aggregate(_answers(({"text": "hi"}, "approved")))
        assert result.answer is None and result.agreement is None
