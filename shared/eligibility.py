"""May this worker discover, preview or accept these projects' work? (owner: workers service)

A library over the shared schema rather than an internal endpoint: the tasks service calls it on
the accept hot path inside its own request transaction, where an HTTP hop would cost more than
the whole check. Whatever the number of projects and requirements, `evaluate_eligibility` reads
everything it needs in ONE statement (grants of the referenced types, blocks by the projects'
requesters, the worker's stats, country and level) and decides in Python.

Requirement shape (a project's `qualification_requirements` items):
`{qualification_type_id, comparator, values: [int|str], guard: "discover"|"preview"|"accept"}`.
Guards nest as in MTurk: `discover` also guards preview and accept, `preview` also guards accept.
Only `not_exists` is satisfied by a worker who lacks the qualification (MTurk's rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from typing_extensions import TypeAliasType

from shared.iso import normalize_country

if TYPE_CHECKING:
    from shared.database import Db

# --------------------------------------------------------------------------- system types

APPROVAL_RATE_TYPE_ID = "000000000000000000L0"
APPROVED_COUNT_TYPE_ID = "00000000000000000040"
COUNTRY_TYPE_ID = "00000000000000000071"
LEVEL_TYPE_ID = "00000000000000000LV0"
SYSTEM_TYPE_NAMES: dict[str, str] = {
    APPROVAL_RATE_TYPE_ID: "system.approval_rate",
    APPROVED_COUNT_TYPE_ID: "system.approved_count",
    COUNTRY_TYPE_ID: "system.country",
    LEVEL_TYPE_ID: "system.level",
}
SYSTEM_TYPE_IDS = frozenset(SYSTEM_TYPE_NAMES)

APPROVAL_RATE_MIN_DECIDED = 10
"""system.approval_rate is 100 until the worker has this many approved + rejected assignments."""

MAX_REQUIREMENTS = 10

MAX_LEVEL = 3
"""system.level runs 0 (entry) to 3 (expert): services/workers/levels/ keeps it in worker_levels."""

# Named (TypeAliasType): one `$ref`-ed component each in the OpenAPI documents.
Comparator = TypeAliasType(
    "QualificationComparator",
    Literal["lt", "lte", "gt", "gte", "eq", "ne", "exists", "not_exists", "in", "not_in"],
)
Guard = TypeAliasType("QualificationGuard", Literal["discover", "preview", "accept"])
GUARDS: tuple[Guard, ...] = ("discover", "preview", "accept")
_GUARD_RANK = {"discover": 0, "preview": 1, "accept": 2}
_ORDERING = {"lt", "lte", "gt", "gte"}
_SINGLE = {"lt", "lte", "gt", "gte", "eq", "ne"}
_SETS = {"in", "not_in"}
_PRESENCE = {"exists", "not_exists"}
_COUNTRY_COMPARATORS = {"eq", "ne", "in", "not_in", "exists", "not_exists"}


def approval_rate_value(approved: int, rejected: int) -> int:
    """system.approval_rate: whole percent rounded down, so nobody is credited a rate not earned."""
    decided = approved + rejected
    if decided < APPROVAL_RATE_MIN_DECIDED:
        return 100
    return (100 * approved) // decided


# --------------------------------------------------------------------------- requirement model


class QualificationRequirement(BaseModel):
    """One requirement as a project stores it; the tasks service validates projects with it."""

    model_config = ConfigDict(extra="forbid")

    qualification_type_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    comparator: Comparator
    values: list[StrictInt | StrictStr] = Field(default_factory=list, max_length=100)
    guard: Guard = "accept"

    @model_validator(mode="after")
    def _values_fit_comparator(self) -> QualificationRequirement:
        n = len(self.values)
        if self.comparator in _PRESENCE and n:
            raise ValueError(f"{self.comparator} takes no values")
        if self.comparator in _SINGLE and n != 1:
            raise ValueError(f"{self.comparator} takes exactly one value")
        if self.comparator in _SETS and n == 0:
            raise ValueError(f"{self.comparator} takes at least one value")
        if self.qualification_type_id == COUNTRY_TYPE_ID:
            if self.comparator not in _COUNTRY_COMPARATORS:
                raise ValueError("system.country compares with eq, ne, in, not_in or (not_)exists")
            if not all(isinstance(v, str) for v in self.values):
                raise ValueError("system.country values are ISO 3166-1 alpha-2 codes")
            self.values = [normalize_country(str(v)) for v in self.values]
        elif not all(isinstance(v, int) for v in self.values):
            raise ValueError("qualification values are integers (strings only for system.country)")
        elif self.qualification_type_id == LEVEL_TYPE_ID:
            # A level outside the ladder can never be met (or always is): a typo, not a rule.
            if not all(0 <= int(v) <= MAX_LEVEL for v in self.values):
                raise ValueError(f"system.level values are levels 0 to {MAX_LEVEL}")
        return self


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ProjectRules:
    project_id: str
    requester_id: str
    requirements: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class UnmetRequirement:
    qualification_type_id: str
    comparator: str
    values: list[Any]
    actual: int | str | None
    reason: str
    guard: str = "accept"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GuardResult:
    ok: bool
    failures: list[UnmetRequirement] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Eligibility:
    blocked: bool
    discover: GuardResult
    preview: GuardResult
    accept: GuardResult

    def guard(self, name: Guard) -> GuardResult:
        return {"discover": self.discover, "preview": self.preview, "accept": self.accept}[name]


@dataclass(frozen=True, slots=True)
class WorkerStatsCounts:
    submitted: int
    approved: int
    rejected: int

    @property
    def decided(self) -> int:
        return self.approved + self.rejected


@dataclass(frozen=True, slots=True)
class WorkerFacts:
    """Everything requirements are checked against, read in one statement."""

    country: str | None
    stats: WorkerStatsCounts
    grants: Mapping[str, int]
    blocked_by: frozenset[str]
    level: int = 0

    def value_of(self, qualification_type_id: str) -> int | str | None:
        if qualification_type_id == APPROVAL_RATE_TYPE_ID:
            return approval_rate_value(self.stats.approved, self.stats.rejected)
        if qualification_type_id == APPROVED_COUNT_TYPE_ID:
            return self.stats.approved
        if qualification_type_id == COUNTRY_TYPE_ID:
            return self.country
        if qualification_type_id == LEVEL_TYPE_ID:
            return self.level
        return self.grants.get(qualification_type_id)


# --------------------------------------------------------------------------- queries


# A worker's counts are the compacted row plus the not yet compacted deltas (WorkerStatsDelta);
# both in one statement, hence one snapshot, hence exact.
def worker_stats_sql(worker: str) -> str:
    """The worker's exact counts; `worker` is an SQL expression (a parameter such as `$1`)."""
    return f"""
    SELECT coalesce(sum(s), 0)::bigint AS submitted,
           coalesce(sum(a), 0)::bigint AS approved,
           coalesce(sum(r), 0)::bigint AS rejected
    FROM (
        SELECT submitted_count AS s, approved_count AS a, rejected_count AS r
        FROM worker_stats WHERE worker_id = {worker}
        UNION ALL
        SELECT submitted, approved, rejected FROM worker_stats_deltas WHERE worker_id = {worker}
    ) AS parts
"""


WORKER_STATS_SQL = worker_stats_sql("$1")


def worker_facts_sql(*, worker: str, requester_ids: str, type_ids: str) -> str:
    """Everything a decision needs about one worker, as one SELECT over SQL expressions: the
    worker, the requesters whose blocks matter (text[]) and the qualification types asked
    about (text[]). Callers can embed it (accept reads its project and these facts in one round
    trip, as a LATERAL sub-select); `facts_from_row` reads the columns back.

    `level` is the worker's platform level (system.level; 0 for a worker the ladder has never
    recorded, who has no worker_levels row): one primary-key probe. It is the LAST column, and
    stays so: accept's row type (AcceptEligibility) reads these columns by position.

    The profile's country wins once a profile exists (the worker may have cleared it); before
    that, the account's.
    """
    return f"""
SELECT
    (SELECT CASE WHEN p.worker_id IS NULL THEN a.country ELSE p.country END
       FROM accounts a LEFT JOIN worker_profiles p ON p.worker_id = a.id
      WHERE a.id = {worker}) AS country,
    st.submitted, st.approved, st.rejected,
    (SELECT coalesce(array_agg(b.requester_id), '{{}}')
       FROM worker_blocks b
      WHERE b.worker_id = {worker} AND b.requester_id = ANY({requester_ids})) AS blocked_by,
    g.type_ids, g.type_values,
    coalesce((SELECT l.level FROM worker_levels l WHERE l.worker_id = {worker}), 0)::int AS level
FROM ({worker_stats_sql(worker)}) AS st,
     (SELECT coalesce(array_agg(q.qualification_type_id), '{{}}') AS type_ids,
             coalesce(array_agg(q.value), '{{}}') AS type_values
        FROM worker_qualifications q
       WHERE q.worker_id = {worker} AND q.status = 'granted'
         AND q.qualification_type_id = ANY({type_ids})) AS g
"""


_FACTS_SQL = worker_facts_sql(worker="$1", requester_ids="$2::text[]", type_ids="$3::text[]")


def facts_from_row(row: Mapping[str, Any]) -> WorkerFacts:
    """WorkerFacts from a row holding the columns of `worker_facts_sql`."""
    return WorkerFacts(
        country=row["country"],
        stats=WorkerStatsCounts(int(row["submitted"]), int(row["approved"]), int(row["rejected"])),
        grants=dict(zip(row["type_ids"], row["type_values"], strict=True)),
        blocked_by=frozenset(row["blocked_by"]),
        level=int(row["level"]) if row.get("level") is not None else 0,
    )


async def fetch_worker_stats(db: Db, worker_id: str) -> WorkerStatsCounts:
    row = await db.fetchrow(WORKER_STATS_SQL, worker_id)
    assert row is not None
    return WorkerStatsCounts(int(row["submitted"]), int(row["approved"]), int(row["rejected"]))


async def fetch_worker_facts(
    db: Db,
    *,
    worker_id: str,
    requester_ids: Iterable[str],
    qualification_type_ids: Iterable[str],
) -> WorkerFacts:
    row = await db.fetchrow(
        _FACTS_SQL,
        worker_id,
        sorted(set(requester_ids)),
        sorted(set(qualification_type_ids) - SYSTEM_TYPE_IDS),
    )
    assert row is not None
    return facts_from_row(row)


# --------------------------------------------------------------------------- evaluation


def check_requirement(requirement: Mapping[str, Any], actual: int | str | None) -> str | None:
    """None when the requirement holds for `actual`, else why not (fails closed on bad input)."""
    comparator = requirement.get("comparator")
    values = requirement.get("values") or []
    if comparator == "not_exists":
        return None if actual is None else f"the worker has this qualification (value {actual})"
    if actual is None:
        return "the worker does not have this qualification"
    if comparator == "exists":
        return None
    if comparator in _SETS:
        if not isinstance(values, list) or not values:
            return f"invalid requirement: {comparator} needs values"
        inside = any(_same(actual, v) for v in values)
        if comparator == "in":
            return None if inside else f"value {actual!r} is not one of {values!r}"
        return None if not inside else f"value {actual!r} is one of {values!r}"
    if comparator not in _SINGLE:
        return f"invalid requirement: unknown comparator {comparator!r}"
    if not isinstance(values, list) or len(values) != 1:
        return f"invalid requirement: {comparator} needs exactly one value"
    expected = values[0]
    if comparator == "eq":
        return None if _same(actual, expected) else f"value {actual!r} is not {expected!r}"
    if comparator == "ne":
        return None if not _same(actual, expected) else f"value {actual!r} is {expected!r}"
    if not _is_int(actual) or not _is_int(expected):
        return f"invalid requirement: {comparator} compares integers, got {actual!r}"
    assert isinstance(actual, int) and isinstance(expected, int)
    holds = {
        "lt": actual < expected,
        "lte": actual <= expected,
        "gt": actual > expected,
        "gte": actual >= expected,
    }[comparator]
    words = {"lt": "less than", "lte": "at most", "gt": "greater than", "gte": "at least"}
    return None if holds else f"value {actual} is not {words[comparator]} {expected}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(actual: int | str, expected: Any) -> bool:
    if isinstance(actual, str):  # only system.country is textual; ISO codes compare uppercased
        return isinstance(expected, str) and actual.upper() == expected.strip().upper()
    return _is_int(expected) and actual == expected


def evaluate_with_facts(facts: WorkerFacts, project: ProjectRules) -> Eligibility:
    """Pure part of the decision: requirements and a block against already-read facts."""
    failures: dict[str, list[UnmetRequirement]] = {g: [] for g in GUARDS}
    for requirement in project.requirements:
        guard = requirement.get("guard") or "accept"
        if guard not in _GUARD_RANK:
            guard = "discover"  # an unknown guard fails closed, everywhere
        type_id = str(requirement.get("qualification_type_id"))
        actual = facts.value_of(type_id)
        reason = check_requirement(requirement, actual)
        if reason is None:
            continue
        unmet = UnmetRequirement(
            qualification_type_id=type_id,
            comparator=str(requirement.get("comparator")),
            values=list(requirement.get("values") or []),
            actual=actual,
            reason=reason,
            guard=guard,
        )
        # A requirement guarding an earlier step also guards every later one.
        for g in GUARDS[_GUARD_RANK[guard] :]:
            failures[g].append(unmet)
    blocked = project.requester_id in facts.blocked_by
    results = {
        g: GuardResult(ok=not blocked and not failures[g], failures=failures[g]) for g in GUARDS
    }
    return Eligibility(blocked=blocked, **results)


async def evaluate_eligibility(
    db: Db, *, worker_id: str, projects: Sequence[ProjectRules]
) -> dict[str, Eligibility]:
    """Eligibility per project id, from one round trip to Postgres (none for no projects)."""
    if not projects:
        return {}
    facts = await fetch_worker_facts(
        db,
        worker_id=worker_id,
        requester_ids=(p.requester_id for p in projects),
        qualification_type_ids=(
            str(r.get("qualification_type_id")) for p in projects for r in p.requirements
        ),
    )
    return {p.project_id: evaluate_with_facts(facts, p) for p in projects}
