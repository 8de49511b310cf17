"""MTurk-style credentials of requester accounts (the door's SigV4 keys)."""
