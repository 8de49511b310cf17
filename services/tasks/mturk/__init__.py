"""The MTurk-compatible requester API ("the door"): MTurk 2017-01-17 over AWS JSON 1.1 at
`POST /mturk` of the tasks service. See docs/mturk.md.

Importing the package imports every operation module so their `@mturk_operation` decorators
register before the first request.
"""

from __future__ import annotations

import importlib
import pkgutil

from services.tasks.mturk import operations as _operations


def _import_operations() -> None:
    for module in pkgutil.iter_modules(_operations.__path__):
        importlib.import_module(f"{_operations.__name__}.{module.name}")


_import_operations()
