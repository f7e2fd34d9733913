"""Use cases: the async store (source) and its generated sync twin."""
