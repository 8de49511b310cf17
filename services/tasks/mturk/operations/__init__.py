"""One module per group of MTurk operations; each registers its handlers with
`services.tasks.mturk.registry.mturk_operation`. The door's package imports them all."""
