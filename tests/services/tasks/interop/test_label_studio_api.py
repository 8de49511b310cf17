"""Label Studio through the API: the config, the export checked by label-studio-sdk, the import
(gold from annotations, item-indexed problems, money, Idempotency-Key) and the round trip.

The SDK's checks: `LabelInterface` parses our config (and `validate()`s it against LS's config
schema) and validates every annotation's and prediction's regions against it; each exported
task validates as the SDK's `ImportApiRequest` (the task model of LS's import API) and each
prediction as `PredictionValue` (the label interface's prediction model); and LS's converter
reads the file into COCO (boxes, in pixels) or JSON-min, values checked. `ImportApiRequest`
is given the task without `predictions`: its prediction model is the standalone predictions
API's, which requires a `task` id that an import file never has. (The label interface's
`TaskValue` is not used: its annotation model requires `completed_by`, an LS user id, which the
export leaves out on purpose; see services/tasks/interop/service.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from label_studio_sdk.converter import Converter
from label_studio_sdk.label_interface import LabelInterface
from label_studio_sdk.label_interface.objects import PredictionValue
from label_studio_sdk.types import ImportApiRequest

from services.tasks.interop.label_studio import answer_of, layout_for
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import balance, cents, deposit
from tests.fixtures.projects import add_tasks, create_project, insert_assignment

BOX_A = {"label": "car", "x": 0.1, "y": 0.2, "width": 0.3, "height": 0.35}
BOX_B = {"label": "person", "x": 0.5, "y": 0.125, "width": 0.25, "height": 0.5}

# name -> (project settings, task inputs, gold of task 1, three workers' answers to task 0,
#          the default export's majority aggregate of task 0 and its agreement, or None for
#          the types majority does not aggregate)
CASES: dict[str, tuple[dict[str, Any], list[dict], Any, list[Any], Any]] = {
    "classification": (
        {"task_type": "classification", "labels": ["cat", "dog", "bird"]},
        [{"image_url": "https://img.example/0.jpg"}, {"image_url": "https://img.example/1.jpg"}],
        {"label": "bird"},
        [{"label": "cat"}, {"label": "dog"}, {"label": "cat"}],
        ({"label": "cat"}, 0.5),  # the rejected answer does not vote: a tie, cat comes first
    ),
    "sentiment": (
        {"task_type": "sentiment", "labels": None},
        [{"text": "Loved it"}, {"text": "Meh"}],
        {"label": "neutral"},
        [{"label": "positive"}, {"label": "positive"}, {"label": "positive"}],
        ({"label": "positive"}, 1.0),
    ),
    "transcription": (
        {"task_type": "transcription", "labels": None},
        [{"audio_url": "https://audio.example/0.wav"}, {"audio_url": "https://audio.example/1"}],
        {"text": "the gold\ntranscript"},
        [{"text": "hello world"}, {"text": "hello word"}, {"text": ""}],
        None,
    ),
    "free_form_text": (
        {
            "task_type": "free_form",
            "labels": None,
            "answer_schema": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "topic": {"enum": ["sport", "politics"]},
                },
                "required": ["summary"],
                "additionalProperties": False,
            },
        },
        [{"text": "article 0"}, {"text": "article 1"}],
        {"summary": "the gold summary", "topic": "sport"},
        [
            {"summary": "a", "topic": "sport"},
            {"summary": "b\nc", "topic": "politics"},
            {"summary": ""},
        ],
        None,
    ),
    "bounding_box": (
        {"task_type": "bounding_box", "labels": ["car", "person"]},
        [
            {"image_url": "https://img.example/b0.jpg", "width": 800, "height": 600},
            {"image_url": "https://img.example/b1.jpg"},
        ],
        {"boxes": [BOX_B]},
        [{"boxes": [BOX_A, BOX_B]}, {"boxes": [BOX_A]}, {"boxes": []}],
        None,
    ),
}


async def _project_with_answers(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: Any, case: str
) -> tuple[Actor, dict[str, Any], list[str], list[Actor]]:
    settings, inputs, gold, answers, _ = CASES[case]
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, **settings)
    tasks = [
        {"input": inputs[0], "external_id": f"{case}-0"},
        {"input": inputs[1], "gold_answer": gold},
    ]
    ids = (await add_tasks(tasks_client, requester, project["id"], tasks))["task_ids"]
    workers = [await create_worker(workers_client) for _ in answers]
    for worker, answer, status in zip(
        workers, answers, ("approved", "submitted", "rejected"), strict=True
    ):
        await insert_assignment(
            db, task_id=ids[0], worker_id=worker.id, status=status, answer=answer
        )
    return requester, project, ids, workers


async def _config(tasks_client: httpx.AsyncClient, requester: Actor, project_id: str) -> str:
    resp = await tasks_client.get(
        f"/v1/projects/{project_id}/label-studio/config", headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    config = resp.json()
    assert config["label_config"].startswith("<View>")
    return config["label_config"]


async def _export(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str
) -> list[dict[str, Any]]:
    resp = await tasks_client.get(
        f"/v1/projects/{project_id}/results",
        params={"format": "label_studio"},
        headers=requester.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()


def _check_with_sdk(config: str, exported: list[dict[str, Any]]) -> None:
    interface = LabelInterface(config)
    interface.validate()
    for task in exported:
        ImportApiRequest.model_validate({k: v for k, v in task.items() if k != "predictions"})
        for annotation in task["annotations"]:
            assert interface.validate_annotation(annotation), annotation
        for prediction in task["predictions"]:
            PredictionValue.model_validate(prediction)
            assert interface.validate_prediction(prediction, return_errors=True) == []


def _converted_by_label_studio(
    config: str, exported: list[dict[str, Any]], case: str, tmp_path: Path
) -> Any:
    """The export read by label-studio-sdk's converter (what LS runs to turn its exports into
    COCO, CSV, ...): COCO for boxes, JSON-min (one record per annotation, the control's value
    under its name) for the rest. The converter keys records by LS's task ids, which LS
    assigns on import, so the tasks get their position as id here."""
    path = tmp_path / "label-studio.json"
    path.write_bytes(orjson.dumps([{**t, "id": i} for i, t in enumerate(exported)]))
    converter = Converter(config, project_dir=str(tmp_path), download_resources=False)
    out = tmp_path / "converted"
    if case == "bounding_box":
        converter.convert_to_coco(str(path), str(out), is_dir=False)
    else:
        converter.convert_to_json_min(str(path), str(out), is_dir=False)
    return orjson.loads((out / "result.json").read_bytes())


def _check_conversion(case: str, converted: Any, answers: list[Any], gold: Any) -> None:
    if case == "bounding_box":
        # pixels = percent x original size: 800 x 600 for task 0, whose boxes say their size
        # (the converter makes one image entry per annotation)
        task_0 = {i["id"] for i in converted["images"] if i["file_name"].endswith("b0.jpg")}
        boxes = sorted(
            [round(v, 9) for v in a["bbox"]]
            for a in converted["annotations"]
            if a["image_id"] in task_0
        )
        expected = [
            [round(v, 9) for v in (b["x"] * 800, b["y"] * 600, b["width"] * 800, b["height"] * 600)]
            for answer in answers
            for b in answer["boxes"]
        ]
        assert boxes == sorted(expected)
        return
    field = {"transcription": "text", "free_form_text": "summary"}.get(case, "label")
    by_task: dict[int, list[Any]] = {0: [], 1: []}
    for record in converted:
        by_task[record["id"]].append(record[field])
    assert sorted(by_task[0]) == sorted(a[field] for a in answers)
    assert by_task[1] == [gold[field]]


async def _tasks_of(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str
) -> list[dict[str, Any]]:
    resp = await tasks_client.get(
        f"/v1/projects/{project_id}/tasks", params={"limit": 200}, headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    return sorted(resp.json()["items"], key=lambda t: t["id"])


async def _import(
    tasks_client: httpx.AsyncClient,
    requester: Actor,
    project_id: str,
    body: Any,
    *,
    gold: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await tasks_client.post(
        f"/v1/projects/{project_id}/label-studio/tasks",
        params={} if gold is None else {"annotations_as_gold": gold},
        content=orjson.dumps(body),
        headers={**requester.headers, "Content-Type": "application/json", **(headers or {})},
    )


@pytest.mark.parametrize("case", list(CASES))
async def test_export_passes_the_sdk_and_round_trips(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db: Any,
    case: str,
    tmp_path: Path,
) -> None:
    settings, inputs, gold, _, aggregate = CASES[case]
    requester, project, ids, workers = await _project_with_answers(
        tasks_client, workers_client, db, case
    )
    config = await _config(tasks_client, requester, project["id"])
    exported = await _export(tasks_client, requester, project["id"])
    _check_with_sdk(config, exported)
    converted = _converted_by_label_studio(config, exported, case, tmp_path)
    _check_conversion(case, converted, CASES[case][3], gold)

    first, second = exported
    assert [t["data"] for t in exported] == inputs
    assert first["meta"] == {"task_id": ids[0], "external_id": f"{case}-0"}
    assert second["meta"] == {"task_id": ids[1], "external_id": None}
    # task 0: one annotation per answer, in assignment order, with who and when
    assert sorted((a["worker_id"], a["status"]) for a in first["annotations"]) == sorted(
        zip((w.id for w in workers), ("approved", "submitted", "rejected"), strict=True)
    )
    assignment_ids = [a["assignment_id"] for a in first["annotations"]]
    assert assignment_ids == sorted(assignment_ids)
    assert all(a["ground_truth"] is False for a in first["annotations"])
    for annotation in first["annotations"]:
        assert annotation["created_at"].endswith("Z") and annotation["lead_time"] == 60.0
        assert "completed_by" not in annotation
    # task 1: its gold answer is the one annotation, marked ground truth
    assert [a["ground_truth"] for a in second["annotations"]] == [True]
    assert second["annotations"][0]["created_at"].endswith("Z")
    assert second["predictions"] == []
    if aggregate is not None:
        (prediction,) = first["predictions"]
        assert prediction["model_version"] == "majority"
        assert prediction["score"] == aggregate[1]
        assert prediction["result"][0]["value"] == {"choices": [aggregate[0]["label"]]}
    if case == "bounding_box":
        (of_first_worker,) = [a for a in first["annotations"] if a["worker_id"] == workers[0].id]
        region = of_first_worker["result"][0]
        assert region["value"] == {
            "x": 10.0,
            "y": 20.0,
            "width": 30.0,
            "height": 35.0,
            "rotation": 0,
            "rectanglelabels": ["car"],
        }
        assert (region["original_width"], region["original_height"]) == (800, 600)
        assert "original_width" not in second["annotations"][0]["result"][0]

    # round trip: the export imported into a new project of the same kind
    target = await create_project(tasks_client, requester, **settings)
    resp = await _import(tasks_client, requester, target["id"], exported, gold="ground_truth")
    assert resp.status_code == 201, resp.text
    assert resp.json()["created"] == 2
    copied = await _tasks_of(tasks_client, requester, target["id"])
    original = await _tasks_of(tasks_client, requester, project["id"])
    assert [(t["input"], t["gold_answer"], t["external_id"]) for t in copied] == [
        (t["input"], t["gold_answer"], t["external_id"]) for t in original
    ]
    assert copied[1]["gold_answer"] == gold


async def test_first_annotation_as_gold_and_label_studio_native_files(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, task_type="sentiment", labels=None)
    # as Label Studio itself exports: its own names, ids, counters, a relation, a skipped one
    native = [
        {
            "id": 17,
            "data": {"text": "Great"},
            "annotations": [
                {"id": 1, "was_cancelled": True, "result": [], "completed_by": 3},
                {
                    "id": 2,
                    "completed_by": 3,
                    "result": [
                        {
                            "id": "a1",
                            "from_name": "sentiment",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": ["Positive"]},
                        },
                        {"from_id": "a1", "to_id": "a1", "type": "relation", "direction": "right"},
                    ],
                },
            ],
            "predictions": [{"model_version": None, "score": None, "result": []}],
            "total_annotations": 2,
        },
        {"data": {"text": "Nothing"}, "annotations": []},
        {"data": {"text": "Plain"}},
    ]
    resp = await _import(tasks_client, requester, project["id"], native, gold="ground_truth")
    assert resp.status_code == 201, resp.text
    resp = await _import(tasks_client, requester, project["id"], native, gold="first")
    assert resp.status_code == 201, resp.text
    resp = await _import(tasks_client, requester, project["id"], native)  # default: none
    assert resp.status_code == 201, resp.text
    golds = [t["gold_answer"] for t in await _tasks_of(tasks_client, requester, project["id"])]
    assert golds == [None, None, None, {"label": "positive"}, None, None, None, None, None]


async def test_bad_items_are_named_by_index_and_nothing_is_written(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(
        tasks_client, requester, task_type="bounding_box", labels=["car", "person"]
    )
    box = {"x": 10, "y": 10, "width": 10, "height": 10, "rectanglelabels": ["car"]}
    body = [
        {"data": {"image_url": "ok.jpg"}},
        {
            "data": {"image_url": "rotated.jpg"},
            "annotations": [
                {"result": [{"type": "rectanglelabels", "value": {**box, "rotation": 45}}]}
            ],
        },
        {
            "data": {"image_url": "truck.jpg"},
            "annotations": [
                {
                    "result": [
                        {"type": "rectanglelabels", "value": {**box, "rectanglelabels": ["truck"]}}
                    ]
                }
            ],
        },
        {
            "data": {"image_url": "big.jpg"},
            "annotations": [
                {"result": [{"type": "rectanglelabels", "value": {**box, "width": 150}}]}
            ],
        },
        {"data": {"image_url": "id.jpg"}, "meta": {"external_id": ""}},
    ]
    resp = await _import(tasks_client, requester, project["id"], body, gold="first")
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["code"] == "validation_error"
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert [(e["loc"], e["msg"]) for e in problem["errors"]] == [
        (["body", 1], "annotations[0]: result[0] is rotated (45); boxes here are axis-aligned"),
        (["body", 2], 'gold_answer.boxes[0].label: must be one of "car", "person"'),
        (["body", 3], "gold_answer.boxes[0].width: 1.5 is greater than the maximum of 1"),
        (["body", 4], "meta.external_id: must be a string of 1-255 characters"),
    ]
    assert await _tasks_of(tasks_client, requester, project["id"]) == []

    # the body's shape is checked before anything: `data` must be an object
    resp = await _import(tasks_client, requester, project["id"], [{"data": {}}, {"data": "x"}])
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["loc"][:3] == ["body", 1, "data"]
    for bad, status in (([], 422), ({"data": {}}, 422), (b"not json", 400)):
        resp = await tasks_client.post(
            f"/v1/projects/{project['id']}/label-studio/tasks",
            content=bad if isinstance(bad, bytes) else orjson.dumps(bad),
            headers={**requester.headers, "Content-Type": "application/json"},
        )
        assert resp.status_code == status, (bad, resp.text)
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/label-studio/tasks",
        content=orjson.dumps([{"data": {}}]),
        headers={**requester.headers, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 415, resp.text
    resp = await _import(tasks_client, requester, project["id"], [{"data": {}}], gold="all")
    assert resp.status_code == 422
    assert "ground_truth" in resp.text  # names the values that fit
    assert await _tasks_of(tasks_client, requester, project["id"]) == []


async def test_too_many_tasks(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    body = [{"data": {"i": i}} for i in range(10_001)]
    resp = await _import(tasks_client, requester, project["id"], body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "too_many_tasks"


async def test_free_form_without_a_label_studio_form_is_a_422_naming_what_fits(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    project = await create_project(
        tasks_client, requester, task_type="free_form", labels=None, answer_schema=schema
    )
    for path in ("label-studio/config", "results?format=label_studio"):
        resp = await tasks_client.get(
            f"/v1/projects/{project['id']}/{path}", headers=requester.headers
        )
        assert resp.status_code == 422, resp.text
        assert resp.json()["code"] == "label_studio_unsupported"
        assert "free_form projects whose answer schema" in resp.json()["detail"]
    body = [{"data": {"text": "x"}, "annotations": [{"result": []}]}]
    resp = await _import(tasks_client, requester, project["id"], body, gold="first")
    assert resp.status_code == 422 and resp.json()["code"] == "label_studio_unsupported"
    # without gold the annotations are not read: the tasks go in
    resp = await _import(tasks_client, requester, project["id"], body)
    assert resp.status_code == 201, resp.text


async def test_someone_elses_project_is_404(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    owner = await create_requester(workers_client)
    other = await create_requester(workers_client)
    project = await create_project(tasks_client, owner)
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/label-studio/config", headers=other.headers
    )
    assert resp.status_code == 404
    resp = await _import(tasks_client, other, project["id"], [{"data": {"image_url": "x"}}])
    assert resp.status_code == 404
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/results",
        params={"format": "label_studio"},
        headers=other.headers,
    )
    assert resp.status_code == 404
    worker = await create_worker(workers_client)
    resp = await _import(tasks_client, worker, project["id"], [{"data": {"image_url": "x"}}])
    assert resp.status_code == 403
    resp = await tasks_client.post(  # no key: 401 before the media type is looked at
        f"/v1/projects/{project['id']}/label-studio/tasks",
        content=b"a,b",
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status_code == 401


async def test_live_project_import_reserves_money_once_per_idempotency_key(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, assignments_per_task=2)
    await add_tasks(tasks_client, requester, project["id"], [{"input": {"image_url": "0.jpg"}}])
    slot = cents(project["reward"]) + cents(project["fee_per_assignment"])
    await deposit(payments_client, requester, f"{2 * slot / 100:.2f}")
    resp = await tasks_client.post(
        f"/v1/projects/{project['id']}/publish", headers=requester.headers
    )
    assert resp.status_code == 200, resp.text
    body = [{"data": {"image_url": f"{i}.jpg"}} for i in range(1, 3)]
    key = {"Idempotency-Key": "ls-import-1"}

    resp = await _import(tasks_client, requester, project["id"], body, headers=key)
    assert resp.status_code == 402, resp.text
    assert len(await _tasks_of(tasks_client, requester, project["id"])) == 1

    await deposit(payments_client, requester, f"{4 * slot / 100:.2f}")
    before = await balance(payments_client, requester)
    resp = await _import(tasks_client, requester, project["id"], body, headers=key)
    assert resp.status_code == 201, resp.text
    replay = await _import(tasks_client, requester, project["id"], body, headers=key)
    assert replay.status_code == 201 and replay.json() == resp.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    other_gold = await _import(
        tasks_client, requester, project["id"], body, gold="first", headers=key
    )
    assert other_gold.status_code == 409, other_gold.text
    assert other_gold.json()["code"] == "idempotency_key_reused"
    after = await balance(payments_client, requester)
    assert cents(after["reserved"]) - cents(before["reserved"]) == 4 * slot
    assert cents(after["available"]) == 0
    assert len(await _tasks_of(tasks_client, requester, project["id"])) == 3


async def _get_aggregated(
    tasks_client: httpx.AsyncClient, requester: Actor, project_id: str, params: dict[str, str]
) -> httpx.Response:
    """Ask; on 202 poll the run's status URL until it is done; ask again."""
    url = f"/v1/projects/{project_id}/results"
    resp = await tasks_client.get(url, params=params, headers=requester.headers)
    for _ in range(1200):
        if resp.status_code != 202:
            return resp
        status = await tasks_client.get(resp.headers["location"], headers=requester.headers)
        assert status.json()["status"] != "failed", status.json()
        if status.json()["status"] == "done":
            resp = await tasks_client.get(url, params=params, headers=requester.headers)
        else:
            await asyncio.sleep(0.1)
    raise AssertionError("the aggregation run did not finish")


@pytest.mark.parametrize(
    ("case", "method"),
    [
        ("classification", "dawid_skene"),
        ("transcription", "rover"),
        ("bounding_box", "segmentation_em"),
    ],
)
async def test_export_predictions_are_the_requested_methods_aggregates(
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db: Any,
    case: str,
    method: str,
) -> None:
    """With `aggregation=`, each prediction is the run's aggregate (answer and confidence) that
    the same method's JSON export shows, and still passes the SDK's checks."""
    requester, project, ids, _ = await _project_with_answers(tasks_client, workers_client, db, case)
    params = {"aggregation": method}
    records = (await _get_aggregated(tasks_client, requester, project["id"], params)).json()
    resp = await _get_aggregated(
        tasks_client, requester, project["id"], {**params, "format": "label_studio"}
    )
    assert resp.status_code == 200, resp.text
    exported = resp.json()
    _check_with_sdk(await _config(tasks_client, requester, project["id"]), exported)
    assert [t["meta"]["task_id"] for t in exported] == ids
    settings, inputs, *_ = CASES[case]
    layout = layout_for(
        task_type=settings["task_type"],
        labels=settings.get("labels"),
        multi_label=False,
        answer_schema=None,
        sample_input=inputs[0],
    )
    for task, record in zip(exported, records, strict=True):
        aggregate = record["aggregate"]
        if aggregate["answer"] is None:
            assert task["predictions"] == []
            continue
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == method
        expected = (
            aggregate["confidence"]
            if aggregate["confidence"] is not None
            else aggregate["agreement"]
        )
        assert prediction["score"] == expected
        assert answer_of(layout, prediction["result"]) == aggregate["answer"]
    assert exported[0]["predictions"], "task 0 has votes: it has an aggregate"


async def test_fields_label_studio_writes_are_ignored_never_assigned(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    """Mass assignment (tests/security/test_mass_assignment.py): an LS file carries fields of
    its own, so unknown ones are ignored rather than refused; none of them sets anything."""
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester)
    tempting = {
        "id": "CHOSEN",
        "status": "completed",
        "gold_answer": {"label": "cat"},
        "external_id": "top-level",
        "max_assignments": 100,
        "requester_id": "SOMEONE",
        "is_gold": True,
        "open_slots": 0,
    }
    body = [{"data": {"image_url": "x.jpg"}, **tempting}]
    resp = await _import(tasks_client, requester, project["id"], body, gold="first")
    assert resp.status_code == 201, resp.text
    (task,) = await _tasks_of(tasks_client, requester, project["id"])
    assert task["id"] != "CHOSEN" and task["id"] == resp.json()["task_ids"][0]
    assert task["status"] == "open" and task["is_gold"] is False and task["gold_answer"] is None
    assert task["external_id"] is None
    assert task["max_assignments"] == task["open_slots"] == project["assignments_per_task"]
    assert task["input"] == {"image_url": "x.jpg"}


async def test_export_of_many_tasks_streams_one_array(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient
) -> None:
    """More tasks than one flush (FLUSH_ROWS): the pieces still make one JSON array."""
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, task_type="sentiment", labels=None)
    tasks = [{"input": {"text": f"review {i}"}, "external_id": f"r{i}"} for i in range(250)]
    await add_tasks(tasks_client, requester, project["id"], tasks)
    exported = await _export(tasks_client, requester, project["id"])
    assert [t["meta"]["external_id"] for t in exported] == [f"r{i}" for i in range(250)]
    assert all(t["annotations"] == [] and t["predictions"] == [] for t in exported)


async def test_label_free_boxes_config_lists_the_labels_answers_use(
    tasks_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: Any
) -> None:
    requester = await create_requester(workers_client)
    project = await create_project(tasks_client, requester, task_type="bounding_box", labels=None)
    gold = {"boxes": [{**BOX_A, "label": "car"}]}
    tasks = [{"input": {"image": "0.jpg"}}, {"input": {"image": "1.jpg"}, "gold_answer": gold}]
    ids = (await add_tasks(tasks_client, requester, project["id"], tasks))["task_ids"]
    answers = [
        ("approved", {"boxes": [{**BOX_A, "label": "tree"}, {**BOX_B, "label": "house"}]}),
        ("rejected", {"boxes": [{**BOX_B, "label": "tree"}]}),
        ("submitted", {"boxes": []}),
    ]
    for status, answer in answers:
        worker = await create_worker(workers_client)
        await insert_assignment(
            db, task_id=ids[0], worker_id=worker.id, status=status, answer=answer
        )
    resp = await tasks_client.get(
        f"/v1/projects/{project['id']}/label-studio/config", headers=requester.headers
    )
    config = resp.json()
    assert config["data_key"] == "image"
    interface = LabelInterface(config["label_config"])
    assert interface.get_control("box").labels == ["car", "house", "tree"]
    assert 'value="$image"' in config["label_config"]
    _check_with_sdk(config["label_config"], await _export(tasks_client, requester, project["id"]))
