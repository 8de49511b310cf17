"""The pay floor of per-answer projects: reserve the worst case, settle weekly and at close."""
