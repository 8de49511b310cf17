"""The native task type `mturk_question`: tasks carry an MTurk question, native workers see it
through the work API and answer it through the normal submit, checked against the question;
the results export carries the answers (services/tasks/answers.py, tasks/service.py,
lifecycle/submit.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import accepted, published_project, submit
from tests.services.tasks.mturk.question_samples import (
    EXTERNAL_QUESTION,
    HTML_QUESTION,
    QUESTION_FORM,
)

FORM_TASK = {"input": {"question": QUESTION_FORM, "question_type": "QuestionForm"}}
HTML_TASK = {"input": {"question": HTML_QUESTION, "question_type": "HTMLQuestion"}}
GOOD_FORM_ANSWER: dict[str, Any] = {
    "answers": {
        "colour": {"selection_identifiers": ["green"]},
        "count": {"free_text": "7"},
    }
}


async def test_question_tasks_flow(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    published = await published_project(
        tasks_client,
        workers_client,
        payments_client,
        tasks=[FORM_TASK, HTML_TASK],
        task_type="mturk_question",
        labels=None,
    )
    assert published.project["task_type"] == "mturk_question"
    worker = await create_worker(workers_client)
    preview = await tasks_client.get(f"/v1/work/projects/{published.id}", headers=worker.headers)
    assert preview.status_code == 200, preview.text
    sample = preview.json()["sample_input"]
    assert sample["question_type"] in ("QuestionForm", "HTMLQuestion")

    other = await create_worker(workers_client)
    claims = {
        claim["input"]["question_type"]: (who, claim)
        for who in (worker, other)
        for claim in [await accepted(tasks_client, who, published.id)]
    }
    form_worker, form_claim = claims["QuestionForm"]
    html_worker, html_claim = claims["HTMLQuestion"]
    assert form_claim["input"] == FORM_TASK["input"]
    assert html_claim["input"] == HTML_TASK["input"]
    missing_required = {"answers": {"count": {"free_text": "7"}}}
    resp = await submit(tasks_client, form_worker, form_claim["assignment_id"], missing_required)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0] == {
        "loc": ["body", "answer", "answers", "colour"],
        "msg": "this question is required",
    }
    resp = await submit(tasks_client, form_worker, form_claim["assignment_id"], {"fields": {}})
    assert resp.status_code == 422
    assert "a QuestionForm answer is" in resp.json()["errors"][0]["msg"]
    resp = await submit(tasks_client, form_worker, form_claim["assignment_id"], {"label": "cat"})
    assert resp.status_code == 422  # the project-level shape
    resp = await submit(tasks_client, form_worker, form_claim["assignment_id"], GOOD_FORM_ANSWER)
    assert resp.status_code == 200, resp.text

    fields = {"fields": {"label": "cat", "tags": ["a", "b"]}}
    resp = await submit(tasks_client, html_worker, html_claim["assignment_id"], GOOD_FORM_ANSWER)
    assert resp.status_code == 422
    assert "an HTMLQuestion answer is" in resp.json()["errors"][0]["msg"]
    resp = await submit(tasks_client, html_worker, html_claim["assignment_id"], fields)
    assert resp.status_code == 200, resp.text

    export = await tasks_client.get(
        f"/v1/projects/{published.id}/results?format=json", headers=published.requester.headers
    )
    assert export.status_code == 200, export.text
    answers = {r["input"]["question_type"]: r["answers"][0]["answer"] for r in export.json()}
    assert answers == {"QuestionForm": GOOD_FORM_ANSWER, "HTMLQuestion": fields}
    for fmt in ("jsonl", "csv"):
        resp = await tasks_client.get(
            f"/v1/projects/{published.id}/results?format={fmt}",
            headers=published.requester.headers,
        )
        assert resp.status_code == 200, resp.text
    resp = await tasks_client.get(
        f"/v1/projects/{published.id}/results?format=label_studio",
        headers=published.requester.headers,
    )
    assert resp.status_code == 422 and resp.json()["code"] == "label_studio_unsupported"


async def test_question_task_inputs_are_checked_on_upload(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    from tests.fixtures.accounts import create_requester
    from tests.fixtures.projects import create_project

    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, task_type="mturk_question", labels=None)
    bad = [
        {"input": {"question": HTML_QUESTION, "question_type": "QuestionForm"}},
        {"input": {"question": "<HTMLQuestion", "question_type": "HTMLQuestion"}},
        {"input": {"text": "no question"}},
        {"input": {"question": EXTERNAL_QUESTION, "question_type": "Survey"}},
        {"input": {"question": EXTERNAL_QUESTION, "question_type": "ExternalQuestion"}},
    ]
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks", json={"tasks": bad}, headers=requester.headers
    )
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert [e["loc"][-1] for e in errors] == [0, 1, 2, 3]
    assert "question_type is QuestionForm but the question is a HTMLQuestion" in errors[0]["msg"]
    assert "There was an error parsing the XML" in errors[1]["msg"]
    gold_for_form = [
        {**FORM_TASK, "gold_answer": {"answers": {"count": {"free_text": "3"}}}},
        {**FORM_TASK, "gold_answer": GOOD_FORM_ANSWER},
    ]
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": gold_for_form},
        headers=requester.headers,
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"] == [
        {
            "loc": ["tasks", 0],
            "msg": "gold_answer.answers.colour: this question is required",
        }
    ]
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/tasks",
        json={"tasks": [*bad[4:], *gold_for_form[1:]]},
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text
