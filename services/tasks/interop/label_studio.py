"""Label Studio's task format and labeling config, mapped to and from our projects' answers.

Label Studio (LS) describes a labeling interface as an XML config of *object* tags (what is
shown: `<Image value="$image_url"/>` reads the task's `data.image_url`) and *control* tags (what
is answered: `<Choices>`, `<TextArea>`, `<RectangleLabels>`), and every answer as a list of
*regions* `{from_name, to_name, type, value}` where `from_name` names the control and `to_name`
the object. One project here maps to one `Layout`: one object tag fed by one key of the task
input, and the controls the project's answers fill.

Mapping (answer -> regions, and back on import):
- classification, sentiment: `<Choices>` (`choice="multiple"` for multi-label), value
  `{"choices": [...]}`. On import a choice matches a project label exactly, else
  case-insensitively (LS's sentiment template says "Positive"; ours "positive").
- transcription: `<TextArea>`, value `{"text": [text]}`; on import LS's lines are joined with
  a newline.
- bounding_box: `<RectangleLabels>`, one region per box, value `{x, y, width, height,
  rotation: 0, rectanglelabels: [label]}`. LS measures in percent of the image, we store
  fractions (0-1) of it, so no image size is needed either way: x_ls = 100 * x. The decimal
  point of the shortest repr is moved, so 0.1 is 10.0 (not 10.000000000000002) and
  an export imported again gives the same floats for every fraction of up to 15 significant
  digits; a 16-17 digit one may come back one unit in the last place away (percent floats
  are coarser than fractions in part of the range). When the task input carries the image size
  (`image_width`/`image_height`, or `width`/`height`, positive integers) the regions say it as
  `original_width`/`original_height`. Rotated LS boxes are refused on import (ours are
  axis-aligned).
- free_form: when every property of the answer schema is a string (`<TextArea>`), a string
  enum (`<Choices>`) or an array of string enums (`<Choices choice="multiple">`), one control
  per property, named after it. Any other schema has no LS form: the export says so (422).

Which input key feeds the object tag is read from the project's first task (see `object_for`):
the project's inputs are free JSON, so the config follows the data rather than a fixed name.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.tasks.answers import SENTIMENT_LABELS
from shared.errors import ValidationFailed

GoldSource = Literal["none", "ground_truth", "first"]
OBJECT_NAME = "input"
# LS substitutes `$name` in an object tag's value with `data[name]`: a plain identifier.
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEDIA_KEYS: dict[str, tuple[str, ...]] = {
    "Image": ("image_url", "image", "img", "image_uri"),
    "Audio": ("audio_url", "audio"),
    "Video": ("video_url", "video"),
    "Text": ("text",),
    "HyperText": ("html",),
}
# Which object kinds a task type looks for, in order; then any string-valued key (shown as
# `fallback`), then `default` when the project has no task yet.
_OBJECT_ORDER: dict[str, tuple[tuple[str, ...], str, tuple[str, str]]] = {
    "bounding_box": (("Image",), "Image", ("Image", "image_url")),
    "transcription": (
        ("Audio", "Image", "Video", "Text", "HyperText"),
        "Text",
        ("Audio", "audio_url"),
    ),
    "classification": (("Image", "Audio", "Video", "Text", "HyperText"), "Text", ("Text", "text")),
    "sentiment": (("Image", "Audio", "Video", "Text", "HyperText"), "Text", ("Text", "text")),
    "free_form": (("Image", "Audio", "Video", "Text", "HyperText"), "Text", ("Text", "text")),
}
_SIZE_KEYS = (("image_width", "image_height"), ("width", "height"))


class LabelStudioUnsupported(ValidationFailed):
    """The project's answers have no Label Studio form (a free_form schema outside the rules)."""

    code = "label_studio_unsupported"


class RegionProblem(ValueError):
    """An LS annotation that does not make one of this project's answers (import)."""


@dataclass(frozen=True, slots=True)
class Control:
    name: str  # the control tag's name: a region's from_name
    tag: str  # Choices | TextArea | RectangleLabels
    field: str | None  # the answer property it fills (free_form), None for the built-in shapes
    values: tuple[str, ...]  # choices or box labels
    multiple: bool = False

    @property
    def region_type(self) -> str:
        return self.tag.lower()


@dataclass(frozen=True, slots=True)
class Layout:
    task_type: str
    object_tag: str  # Image | Audio | Video | Text | HyperText
    data_key: str  # the input key the object shows
    controls: tuple[Control, ...]
    object_name: str = OBJECT_NAME


def object_for(task_type: str, sample_input: Mapping[str, Any] | None) -> tuple[str, str]:
    """The object tag and the input key it shows, read from one task's input.

    The first known key for the task type's kinds wins (bounding boxes: `image_url`, `image`,
    ...; transcription: audio, then image, video, text; the label types: image, audio, video,
    `text`, `html`), else the first key holding a string (shown as Text, as an Image for
    boxes), else the type's default (`$image_url`, `$audio_url` or `$text`).
    """
    kinds, fallback, default = _OBJECT_ORDER[task_type]
    if sample_input:
        for kind in kinds:
            for key in _MEDIA_KEYS[kind]:
                if key in sample_input:
                    return kind, key
        for key, value in sample_input.items():
            if isinstance(value, str) and _VARIABLE.match(key):
                return fallback, key
    return default


def _free_form_controls(schema: Mapping[str, Any] | None) -> tuple[Control, ...]:
    properties = (schema or {}).get("properties")
    why = (
        "Label Studio export fits classification, sentiment, transcription and bounding_box "
        "projects, and free_form projects whose answer schema's properties are all strings, "
        "string enums or arrays of string enums"
    )
    if not isinstance(properties, dict) or not properties:
        raise LabelStudioUnsupported(
            f"{why}; this schema has no properties.",
            errors=[{"loc": ["answer_schema"], "msg": "no properties"}],
        )
    controls = []
    bad = []
    for name, spec in properties.items():
        control = _property_control(name, spec)
        if control is None:
            bad.append(name)
        else:
            controls.append(control)
    if bad:
        raise LabelStudioUnsupported(
            f"{why}; not: {', '.join(bad)}.",
            errors=[
                {"loc": ["answer_schema", "properties", name], "msg": "no Label Studio control"}
                for name in bad
            ],
        )
    return tuple(controls)


def _string_enum(spec: Any) -> tuple[str, ...] | None:
    if isinstance(spec, dict):
        enum = spec.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
            return tuple(enum)
    return None


def _property_control(name: str, spec: Any) -> Control | None:
    if not isinstance(spec, dict):
        return None
    choices = _string_enum(spec)
    if choices is not None:
        return Control(name=name, tag="Choices", field=name, values=choices)
    if spec.get("type") == "string" and "enum" not in spec:
        return Control(name=name, tag="TextArea", field=name, values=())
    items = _string_enum(spec.get("items")) if spec.get("type") == "array" else None
    if items is not None:
        return Control(name=name, tag="Choices", field=name, values=items, multiple=True)
    return None


def layout_for(
    *,
    task_type: str,
    labels: Sequence[str] | None,
    multi_label: bool,
    answer_schema: Mapping[str, Any] | None,
    sample_input: Mapping[str, Any] | None,
    box_labels: Sequence[str] = (),
) -> Layout:
    """The LS layout of a project. `box_labels`: for a bounding_box project without labels,
    the labels its answers use (a RectangleLabels control must list them)."""
    if task_type == "classification":
        controls: tuple[Control, ...] = (
            Control(
                name="labels" if multi_label else "label",
                tag="Choices",
                field=None,
                values=tuple(labels or ()),
                multiple=multi_label,
            ),
        )
    elif task_type == "sentiment":
        controls = (Control(name="label", tag="Choices", field=None, values=SENTIMENT_LABELS),)
    elif task_type == "transcription":
        controls = (Control(name="text", tag="TextArea", field=None, values=()),)
    elif task_type == "bounding_box":
        values = tuple(labels) if labels else tuple(box_labels)
        controls = (Control(name="box", tag="RectangleLabels", field=None, values=values),)
    elif task_type == "free_form":
        controls = _free_form_controls(answer_schema)
    elif task_type == "mturk_question":
        # Each task carries its own MTurk question: there is no one labeling config to give.
        raise LabelStudioUnsupported(
            "mturk_question projects have no Label Studio form: every task carries its own "
            "MTurk question.",
            errors=[{"loc": ["task_type"], "msg": "no Label Studio control"}],
        )
    else:
        raise ValueError(f"unknown task type {task_type!r}")
    object_tag, data_key = object_for(task_type, sample_input)
    # A free_form property may be called `input` too: the object then takes another name.
    names = {control.name for control in controls}
    object_name = OBJECT_NAME if OBJECT_NAME not in names else f"{OBJECT_NAME}_object"
    return Layout(
        task_type=task_type,
        object_tag=object_tag,
        data_key=data_key,
        controls=controls,
        object_name=object_name,
    )


def config_xml(layout: Layout, *, title: str | None = None) -> str:
    """The `<View>` config of a layout (ElementTree writes the attributes escaped)."""
    view = ET.Element("View")
    if title:
        ET.SubElement(view, "Header", {"value": title})
    ET.SubElement(
        view, layout.object_tag, {"name": layout.object_name, "value": f"${layout.data_key}"}
    )
    for control in layout.controls:
        attrs = {"name": control.name, "toName": layout.object_name}
        if control.tag == "Choices":
            attrs["choice"] = "multiple" if control.multiple else "single"
            attrs["showInline"] = "true"
            element = ET.SubElement(view, "Choices", attrs)
            for value in control.values:
                ET.SubElement(element, "Choice", {"value": value})
        elif control.tag == "TextArea":
            attrs.update({"rows": "4", "editable": "true", "maxSubmissions": "1"})
            ET.SubElement(view, "TextArea", attrs)
        else:
            element = ET.SubElement(view, "RectangleLabels", attrs)
            for value in control.values:
                ET.SubElement(element, "Label", {"value": value})
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


# --- answers -> regions (export) -----------------------------------------------------------


def _shift(value: float | int, places: int) -> float:
    """`value` x 10**places, rounded once from the shortest decimal of `value`: its repr with
    the exponent moved (float() parses decimal text correctly rounded). The same result as
    Decimal's scaleb (checked on 200,000 random floats), for less work per coordinate."""
    mantissa, _, exponent = repr(value).partition("e")
    return float(f"{mantissa}e{int(exponent or 0) + places}")


def to_percent(fraction: float) -> float:
    return _shift(fraction, 2)


def from_percent(percent: float | int) -> float:
    return _shift(percent, -2)


def image_size(task_input: Mapping[str, Any]) -> tuple[int, int] | None:
    for width_key, height_key in _SIZE_KEYS:
        width, height = task_input.get(width_key), task_input.get(height_key)
        if type(width) is int and type(height) is int and width > 0 and height > 0:
            return width, height
    return None


def _region(layout: Layout, control: Control, value: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "id": f"{control.name}-{index}",
        "from_name": control.name,
        "to_name": layout.object_name,
        "type": control.region_type,
        "value": value,
    }


def _choices_value(control: Control, picked: Any) -> dict[str, Any] | None:
    if control.multiple:
        if isinstance(picked, list) and all(isinstance(v, str) for v in picked):
            return {"choices": list(picked)}
        return None
    return {"choices": [picked]} if isinstance(picked, str) else None


def result_of(
    layout: Layout, answer: Any, *, size: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """The LS regions of one of our answers; parts that do not fit the layout are left out
    (answers were validated against the project's schema, so none should be)."""
    if not isinstance(answer, dict):
        return []
    regions: list[dict[str, Any]] = []
    for control in layout.controls:
        if layout.task_type == "bounding_box":
            regions.extend(_box_regions(layout, control, answer.get("boxes"), size))
            continue
        if control.field is not None:
            picked = answer.get(control.field)
        elif control.tag == "TextArea":
            picked = answer.get("text")
        else:
            picked = answer.get("labels" if control.multiple else "label")
        if picked is None:
            continue
        if control.tag == "Choices":
            value = _choices_value(control, picked)
        else:
            value = {"text": [picked]} if isinstance(picked, str) else None
        if value is not None:
            regions.append(_region(layout, control, value, len(regions)))
    return regions


def _box_regions(
    layout: Layout, control: Control, boxes: Any, size: tuple[int, int] | None
) -> Iterable[dict[str, Any]]:
    if not isinstance(boxes, list):
        return
    for i, box in enumerate(boxes):
        if not isinstance(box, dict) or not isinstance(box.get("label"), str):
            continue
        try:
            geometry = {k: to_percent(box[k]) for k in ("x", "y", "width", "height")}
        except (KeyError, TypeError, ValueError, ArithmeticError):
            continue
        region = _region(
            layout, control, {**geometry, "rotation": 0, "rectanglelabels": [box["label"]]}, i
        )
        if size is not None:
            region["original_width"], region["original_height"] = size
            region["image_rotation"] = 0
        yield region


# --- regions -> answers (import) ------------------------------------------------------------


def _match_label(value: Any, allowed: Sequence[str]) -> Any:
    """A project label for an LS choice: exact, else the one label equal ignoring case; an
    unknown value is kept as is (the answer schema check then names the allowed labels)."""
    if not isinstance(value, str) or value in allowed:
        return value
    folded = [label for label in allowed if label.casefold() == value.casefold()]
    return folded[0] if len(folded) == 1 else value


def _regions_for(control: Control, result: list[Any], single_control: bool) -> list[dict]:
    """The regions of `result` a control owns: by from_name, or (when the layout has one
    control) by region type, so an export of another LS project's names still maps."""
    named = [r for r in result if isinstance(r, dict) and r.get("from_name") == control.name]
    if named or not single_control:
        return named
    return [r for r in result if isinstance(r, dict) and r.get("type") == control.region_type]


def _value(region: dict[str, Any], key: str, where: str) -> Any:
    value = region.get("value")
    if not isinstance(value, dict) or key not in value:
        raise RegionProblem(f"{where}.value.{key} is required")
    return value[key]


def answer_of(layout: Layout, result: Any) -> Any:
    """One of our answers from an LS annotation's `result`; RegionProblem says what is wrong
    (with the place inside `result`)."""
    if not isinstance(result, list):
        raise RegionProblem("result must be a list of regions")
    single = len(layout.controls) == 1
    if layout.task_type == "bounding_box":
        return {"boxes": _boxes_of(layout.controls[0], result, single)}
    answer: dict[str, Any] = {}
    for control in layout.controls:
        regions = _regions_for(control, result, single)
        if not regions:
            if control.field is None:
                raise RegionProblem(f"no {control.region_type} region for {control.name!r}")
            continue
        if len(regions) > 1:
            raise RegionProblem(f"{len(regions)} {control.region_type} regions for one answer")
        region = regions[0]
        where = f"result[{result.index(region)}]"
        key = "choices" if control.tag == "Choices" else "text"
        picked = _value(region, key, where)
        if isinstance(picked, str) and control.tag == "TextArea":
            picked = [picked]  # some tools write one text as a plain string
        if not isinstance(picked, list) or not all(isinstance(v, str) for v in picked):
            raise RegionProblem(f"{where}.value.{key} must be a list of strings")
        if control.tag == "TextArea":
            text: Any = "\n".join(picked)
            answer[control.field or "text"] = text
            continue
        chosen = [_match_label(v, control.values) for v in picked]
        if control.multiple:
            answer[control.field or "labels"] = chosen
        elif len(chosen) != 1:
            raise RegionProblem(f"{where} picks {len(chosen)} choices; one is expected")
        else:
            answer[control.field or "label"] = chosen[0]
    return answer


def _boxes_of(control: Control, result: list[Any], single: bool) -> list[dict[str, Any]]:
    boxes = []
    for region in _regions_for(control, result, single):
        where = f"result[{result.index(region)}]"
        labels = _value(region, "rectanglelabels", where)
        if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
            raise RegionProblem(f"{where}.value.rectanglelabels must hold one label")
        rotation = region["value"].get("rotation", 0)
        if rotation not in (0, None) and not (
            isinstance(rotation, int | float) and float(rotation) % 360 == 0
        ):
            raise RegionProblem(f"{where} is rotated ({rotation}); boxes here are axis-aligned")
        box: dict[str, Any] = {"label": _match_label(labels[0], control.values)}
        for key in ("x", "y", "width", "height"):
            number = _value(region, key, where)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise RegionProblem(f"{where}.value.{key} must be a number (percent)")
            box[key] = from_percent(number)
        boxes.append(box)
    return boxes


def chosen_annotation(annotations: list[Any], source: GoldSource) -> tuple[int, dict] | None:
    """The annotation that becomes the gold answer, with its index: `ground_truth` takes the
    first annotation marked ground_truth; `first` that one too when there is one, else the
    first one not cancelled (skipped). Cancelled annotations never count."""
    if source == "none":
        return None
    usable = [
        (i, a)
        for i, a in enumerate(annotations)
        if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    for i, annotation in usable:
        if annotation.get("ground_truth") is True:
            return i, annotation
    if source == "first" and usable:
        return usable[0]
    return None
