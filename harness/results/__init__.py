"""Stored results and what is derived from them: the SQLite store, ranking, carbon factors."""
