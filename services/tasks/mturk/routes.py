"""Where the door is mounted: `POST /mturk` (and `/mturk/`) on the tasks service.

botocore joins the model's request path "/" onto the endpoint URL's path: with
`endpoint_url="http://host:8001/mturk"` it posts to `/mturk`, with `.../mturk/` to `/mturk/`.
Both are served (the app does not redirect slashes). `POST /` is served too, for a client
whose `endpoint_url` is the tasks service's bare origin: an AWS JSON call there is
recognisable by its `X-Amz-Target`, and nothing else posts to `/`. None of these are in the
OpenAPI document: they are not the JSON/REST contract (docs/mturk.md documents them).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

import services.tasks.mturk  # noqa: F401  (imports the operations: their handlers register)
from services.tasks.mturk.protocol import handle

router = APIRouter(tags=["mturk"], include_in_schema=False)

DOOR_PATHS = ("/mturk", "/mturk/", "/")


async def mturk_door(request: Request) -> Response:
    return await handle(request)


for _path in DOOR_PATHS:
    router.add_api_route(
        _path, mturk_door, methods=["POST"], include_in_schema=False, name="mturk_door"
    )
