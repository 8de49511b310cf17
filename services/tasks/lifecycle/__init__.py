"""The assignment lifecycle: every transition of an assignment (and of the slots and money that
follow it), one module each, apart from the CRUD reads of assignments/ and the routes.

    accept.py        worker claims a slot (fast: ACCEPT_FUSED_SQL; general: claim passes)
    submit.py        accepted → submitted (fast: SUBMIT_IF_UNCHANGED_SQL; general: SUBMIT_SQL)
    give_back.py     accepted → returned, the slot reopens or its money is released
    expire.py        accepted → expired past the deadline (timers), slots come back
    approve.py       submitted → approved (fast: APPROVE_ONE_SQL; general: record_approvals)
    reject.py        submitted → rejected, the slot comes back
    override.py      rejected → approved within the window, paid from the available balance
    auto_approve.py  submitted → approved past auto_approve_at (timers), approve's general path
    close.py         a project closes; its unused slots' money is released
    bulk_review.py   approve / reject / override many at once, through their general paths

Shared: assignment.py (columns, row, API shape, errors, transactions), decisions.py (what the
requester's decisions share), slots.py (slot accounting), task_lifetime.py (a task's lifetime
ending), accepted.py (what accept keeps for submit), messages.py (THE definition of what a
transition emits: payout and release messages; the fast path's SQL payload is generated from
it). docs/architecture.md, "The assignment lifecycle".
"""
