"""The shared Postgres schema, one module per owning service domain.

Every service may read any table (one schema, Postgres is the only coordinator); each table has
one owner that writes it. Importing this package registers every table on `Base.metadata`,
which alembic's env uses.
"""

from shared.models import payments as _payments  # noqa: F401  (registers the ledger tables)
from shared.models import tasks_queue as _tasks_queue  # noqa: F401  (gold stats, outbox)
from shared.models import timers as _timers  # noqa: F401  (timer indexes)
from shared.models import workers as _workers  # noqa: F401  (qualifications, blocks, stats)
from shared.models.accounts import Account, ApiKey
from shared.models.base import Base, metadata
from shared.models.idempotency import IdempotencyKey
from shared.models.tasks import Assignment, Project, Task

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
