"""Label Studio's task format as we write and read it, for the OpenAPI document (the export is
streamed bytes and the import is parsed by `service.py`; these models describe both).

Only the fields we write or read are named; LS files carry many more (ids, drafts, counters,
relations between regions), which the import ignores, so every model allows extra members and
requires little: the import checks what it uses itself, naming the task's index.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

LabelStudioGold = TypeAliasType("LabelStudioGold", Literal["none", "ground_truth", "first"])


class LabelStudioRegion(BaseModel):
    """One region of an annotation or prediction (LS's region format)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, description="The region's id inside its annotation.")
    from_name: str | None = Field(
        default=None, description="The control tag's name in the labeling config."
    )
    to_name: str | None = Field(default=None, description="The object tag's name (ours: `input`).")
    type: str = Field(description="`choices`, `textarea` or `rectanglelabels` (ours).")
    value: dict[str, Any] | None = Field(
        default=None,
        description="`{choices: [...]}`, `{text: [...]}`, or `{x, y, width, height, rotation, "
        "rectanglelabels: [label]}` in percent of the image.",
    )
    original_width: int | None = Field(
        default=None, description="Boxes: the image's width in pixels when the input says it."
    )
    original_height: int | None = Field(
        default=None, description="Boxes: the image's height in pixels when the input says it."
    )


class LabelStudioAnnotation(BaseModel):
    """A worker's answer (or the task's gold answer, `ground_truth: true`) as an LS annotation."""

    model_config = ConfigDict(extra="allow")

    result: list[LabelStudioRegion]
    ground_truth: bool | None = Field(
        default=None, description="Export: true for the gold answer only."
    )
    was_cancelled: bool | None = Field(
        default=None, description="Skipped in LS; the import never takes a cancelled one."
    )
    created_at: str | None = Field(default=None, description="Export: when it was submitted.")
    updated_at: str | None = Field(
        default=None, description="Export: when it was reviewed, else submitted."
    )
    lead_time: float | None = Field(
        default=None, description="Export: seconds from accept to submit."
    )
    assignment_id: str | None = Field(default=None, description="Export: our assignment.")
    worker_id: str | None = Field(default=None, description="Export: the worker who answered.")
    status: str | None = Field(
        default=None,
        description="Export: the assignment's status (`submitted`, `approved` or `rejected`).",
    )


class LabelStudioPrediction(BaseModel):
    """The aggregate of the requested method as an LS prediction."""

    model_config = ConfigDict(extra="allow")

    model_version: str | None = Field(
        default=None, description="Export: the aggregation method (e.g. `majority`)."
    )
    score: float | None = Field(
        default=None, description="Export: the method's confidence (majority: the agreement), 0-1."
    )
    result: list[LabelStudioRegion]


class LabelStudioTaskMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    task_id: str | None = Field(default=None, description="Export: our task id.")
    external_id: str | None = Field(
        default=None, description="The task's external_id (export and import)."
    )


class LabelStudioTask(BaseModel):
    """One task of a Label Studio task export (`format=label_studio`, and the import body)."""

    model_config = ConfigDict(extra="allow")

    data: dict[str, Any] = Field(description="The task input.")
    meta: LabelStudioTaskMeta | None = None
    annotations: list[LabelStudioAnnotation] = Field(default_factory=list)
    predictions: list[LabelStudioPrediction] = Field(default_factory=list)


class LabelStudioConfig(BaseModel):
    """What a Label Studio project needs to show this project's tasks: create it with this
    `title` and `label_config` (LS's `POST /api/projects` takes both as is), then import
    `GET /v1/projects/{id}/results?format=label_studio`."""

    title: str = Field(description="The project's title.")
    label_config: str = Field(description="The labeling config: a `<View>` XML element.")
    data_key: str = Field(description="The task input key the config shows (`$data_key`).")
