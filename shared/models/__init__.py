"""The shared Postgres schema, one module per table or domain.

Every service may read any table (one schema, Postgres is the only coordinator); each table has
one owner that writes it (the module docstring says which). Importing this package registers
every table on `Base.metadata`, which alembic's env uses. The classes are used as Core tables.
"""

from shared.models import aggregation as _aggregation  # noqa: F401
from shared.models import appeals as _appeals  # noqa: F401
from shared.models import gold as _gold  # noqa: F401  (registers the table)
from shared.models import hourly as _hourly  # noqa: F401
from shared.models import messages as _messages  # noqa: F401
from shared.models import mturk as _mturk  # noqa: F401
from shared.models import outbox as _outbox  # noqa: F401
from shared.models import pay_floor as _pay_floor  # noqa: F401
from shared.models import payments as _payments  # noqa: F401
from shared.models import ratelimit as _ratelimit  # noqa: F401
from shared.models import scorecards as _scorecards  # noqa: F401
from shared.models import training as _training  # noqa: F401
from shared.models import workers as _workers  # noqa: F401
from shared.models.accounts import Account, ApiKey
from shared.models.assignments import Assignment
from shared.models.base import Base, metadata
from shared.models.idempotency import IdempotencyKey
from shared.models.projects import Project
from shared.models.tasks import Task

__all__ = [
    "Account",
    "ApiKey",
    "Assignment",
    "Base",
    "IdempotencyKey",
    "Project",
    "Task",
    "metadata",
]
