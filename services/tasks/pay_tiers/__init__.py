"""Pay tiers: a per-answer project's reward (or an hourly project's rate) by worker level.

The worker's level (system.level, `worker_levels`, services/workers/levels) when the work is
taken fixes the pay: accept writes the tier's reward and fee into the assignment, a work
session stores the tier's hourly rate. Publishing holds the highest tier for every slot
(`projects.slot_cents`); approval pays the assignment's tier and releases the rest of its
slot's hold (services/tasks/lifecycle/approve.py). The rules live in `rules.py`.
"""
