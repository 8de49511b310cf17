"""Inputs checked against botocore's MTurk 2017-01-17 model before any operation runs.

Two layers: botocore's own `ParamValidator` (what boto3 checks client-side: required members,
unknown members, types, the `min` of strings, integers and lists), then what the model declares
and boto3 does not check: string `max`, integer `max`, `pattern` and `enum`. A non-boto3 client
(or a boto3 with `parameter_validation=False`) meets the first layer here; every client meets
the second. Timestamp members arrive as epoch seconds (the JSON protocol's form) and are handed
to the operations as timezone-aware UTC datetimes.

Wording: botocore's report for the first layer; for the second, the AWS JSON services' sentence
("1 validation error detected: Value '500' at 'maxResults' failed to satisfy constraint: Member
must have value less than or equal to 100"), with Amazon's camel-cased member path. TurkErrorCode
`AWS.ParameterOutOfRange`. Amazon's exact MTurk wording for every case is not published; this
is our best knowledge (docs/mturk.md, "Validation").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

from services.tasks.mturk.errors import MTurkRequestError

SERVICE = "mturk"
API_VERSION = "2017-01-17"
PARAMETER_ERROR = "AWS.ParameterOutOfRange"


@cache
def service_model() -> ServiceModel:
    return ServiceModel(
        Loader().load_service_model(SERVICE, "service-2", api_version=API_VERSION), SERVICE
    )


@cache
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def _member_path(path: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


def _collect(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    """The model's second-layer constraints; returns the value with timestamps converted."""
    kind = shape.type_name
    md = shape.metadata
    if kind == "structure" and isinstance(value, dict):
        out = {}
        for name, member_value in value.items():
            member = shape.members.get(name)
            out[name] = (
                member_value
                if member is None
                else _collect(member, member_value, _member_path(path, name), errors)
            )
        return out
    if kind == "list" and isinstance(value, list):
        if "max" in md and len(value) > md["max"]:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {md['max']}"
            )
        return [
            _collect(shape.member, item, f"{path}.{index + 1}.member", errors)
            for index, item in enumerate(value)
        ]
    if kind == "map" and isinstance(value, dict):
        return {k: _collect(shape.value, v, f"{path}.{k}", errors) for k, v in value.items()}
    if kind == "string" and isinstance(value, str):
        if "max" in md and len(value) > md["max"]:
            shown = value if len(value) <= 64 else value[:61] + "..."
            errors.append(
                f"Value '{shown}' at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {md['max']}"
            )
        if "min" in md and len(value) < md["min"]:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have length greater than or equal to {md['min']}"
            )
        if "pattern" in md and not _pattern(md["pattern"]).search(value):
            shown = value if len(value) <= 64 else value[:61] + "..."
            errors.append(
                f"Value '{shown}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {md['pattern']}"
            )
        if shape.enum and value not in shape.enum:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
            )
        return value
    if kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "max" in md and value > md["max"]:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {md['max']}"
            )
        if "min" in md and value < md["min"]:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {md['min']}"
            )
        if not -(2**63) <= value < 2**63:
            errors.append(f"Value '{value}' at '{path}' is out of range for a 64-bit integer")
        return value
    if kind == "timestamp":
        return _timestamp(value, path, errors)
    return value


def _timestamp(value: Any, path: str, errors: list[str]) -> Any:
    if isinstance(value, bool):
        errors.append(f"Value '{value}' at '{path}' is not a timestamp")
        return value
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            errors.append(f"Value '{value}' at '{path}' is not a valid timestamp")
            return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"Value '{value}' at '{path}' is not a valid timestamp")
            return value
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    errors.append(f"Value '{value}' at '{path}' is not a timestamp")
    return value


def validate_input(operation: str, params: Any) -> dict[str, Any]:
    """The params of `operation`, checked; a RequestError that names every failure."""
    input_shape = service_model().operation_model(operation).input_shape
    if not isinstance(params, dict):
        raise MTurkRequestError("The request body must be a JSON object.", PARAMETER_ERROR)
    if input_shape is None:
        return {}
    report = ParamValidator().validate(params, input_shape)
    if report.has_errors():
        raise MTurkRequestError(report.generate_report(), PARAMETER_ERROR)
    errors: list[str] = []
    converted = _collect(input_shape, params, "", errors)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise MTurkRequestError(
            f"{count} validation {noun} detected: " + "; ".join(errors), PARAMETER_ERROR
        )
    return converted


def model_operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)
