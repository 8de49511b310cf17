"""Timers of the tasks service: deadlines, auto-approval, task lifetimes, outbox retention."""
