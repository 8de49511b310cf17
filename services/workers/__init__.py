"""Workers service: accounts and API keys, worker profiles, qualifications, tests, blocks."""
