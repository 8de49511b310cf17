"""The kit the three services share: errors, auth, sessions, pagination, idempotency, HTTP, logs."""
