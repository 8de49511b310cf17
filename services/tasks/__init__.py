"""Tasks service: projects, tasks, assignments, review, results, the worker queue and timers."""
