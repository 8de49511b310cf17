"""The aggregation module on its own: a simulated crowd (known truth, workers of known
reliability, spammers) where Dawid-Skene must beat majority vote, the skills it estimates, and
the shapes of the answers it reads (multi-label sets, gold as crowd-kit's true labels)."""

from __future__ import annotations

import math

import pandas as pd
from crowdkit.aggregation import GLAD, DawidSkene

from bench.aggregation import LABELS, accuracy, simulated_crowd
from services.tasks.results.crowd import aggregate
from services.tasks.results.methods import ProjectShape

SHAPE = ProjectShape("classification", LABELS, False)


def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task", "worker", "answer"])


def test_dawid_skene_beats_majority_vote_on_a_simulated_crowd() -> None:
    crowd = simulated_crowd(tasks=1_500, per_task=5, seed=19)
    answers = _frame(crowd.rows)
    majority = accuracy(aggregate("majority", SHAPE, answers), crowd.truth)
    dawid_skene_result = aggregate("dawid_skene", SHAPE, answers)
    dawid_skene = accuracy(dawid_skene_result, crowd.truth)
    assert dawid_skene > majority + 0.02, (dawid_skene, majority)
    # Its skill estimates rank the reliable workers above the spammers.
    skill = dict(zip(dawid_skene_result.worker_ids, dawid_skene_result.skills, strict=True))
    reliable = [w for w, r in crowd.reliability.items() if r >= 0.85 and w in skill]
    spammers = [w for w, r in crowd.reliability.items() if r <= 0.0 and w in skill]
    assert reliable and spammers
    assert min(skill[w] for w in reliable) > max(skill[w] for w in spammers)


def test_gold_answers_pin_dawid_skene_as_crowd_kit_true_labels() -> None:
    # Two liars outvote one honest worker on every task; gold on two tasks tells the truth.
    rows = []
    for t in range(6):
        rows += [(f"t{t}", "honest", "cat"), (f"t{t}", "liar1", "dog"), (f"t{t}", "liar2", "dog")]
    answers = _frame(rows)
    without = aggregate("dawid_skene", SHAPE, answers)
    assert {a["label"] for a in without.answers} == {"dog"}
    gold = {"t0": {"label": "cat"}, "t1": {"label": "cat"}}
    with_gold = aggregate("dawid_skene", SHAPE, answers, gold=gold)
    reference = DawidSkene(n_iter=100).fit(
        answers.rename(columns={"answer": "label"}),
        true_labels=pd.Series({"t0": "cat", "t1": "cat"}, name="label").rename_axis("task"),
    )
    for task_id, answer, confidence in zip(
        with_gold.task_ids, with_gold.answers, with_gold.confidences, strict=True
    ):
        assert answer["label"] == reference.labels_[task_id]
        assert abs(confidence - reference.probas_.loc[task_id, answer["label"]]) <= 1e-9
    assert with_gold.answers[0] == {"label": "cat"}


def test_multi_label_sets_are_classes_and_ties_follow_the_label_order() -> None:
    shape = ProjectShape("classification", ("dog", "cat", "bird"), True)
    answers = _frame(
        [
            ("t1", "w1", '["cat", "dog"]'),
            ("t1", "w2", '["dog", "cat"]'),
            ("t1", "w3", '["bird"]'),
            ("t2", "w1", '["bird"]'),
            ("t2", "w2", '["cat"]'),
        ]
    )
    result = aggregate("majority", shape, answers)
    assert result.answers == [{"labels": ["dog", "cat"]}, {"labels": ["cat"]}]
    assert result.confidences == [2 / 3, 0.5]
    assert result.agreements == [2 / 3, 0.5]


def test_gold_tallies_are_glad_ability_priors() -> None:
    crowd = simulated_crowd(tasks=60, per_task=4, workers=6, seed=3)
    answers = _frame(crowd.rows)
    tallies = {"W000000": (10, 9), "W000001": (10, 2)}
    ours = aggregate("glad", SHAPE, answers, gold_stats=tallies)
    workers = sorted(answers["worker"].unique())
    priors = pd.Series(
        [
            math.log((tallies[w][1] + 1) / (tallies[w][0] - tallies[w][1] + 1))
            if w in tallies
            else 1.0
            for w in workers
        ],
        index=workers,
    )
    reference = GLAD(alphas_priors_mean=priors).fit(answers.rename(columns={"answer": "label"}))
    for task_id, answer, confidence in zip(
        ours.task_ids, ours.answers, ours.confidences, strict=True
    ):
        assert abs(confidence - reference.probas_.loc[task_id, answer["label"]]) <= 1e-9
    skills = dict(zip(ours.worker_ids, ours.skills, strict=True))
    for worker in workers:
        assert abs(skills[worker] - reference.alphas_[worker]) <= 1e-9
    # The prior moved the fit: without it the abilities differ.
    plain = aggregate("glad", SHAPE, answers)
    assert plain.skills != ours.skills


def test_sentiment_ties_follow_positive_negative_neutral() -> None:
    answers = _frame([("t1", "w1", "neutral"), ("t1", "w2", "negative")])
    result = aggregate("majority", ProjectShape("sentiment", None, False), answers)
    assert result.answers == [{"label": "negative"}]
    assert result.confidences == [0.5]
