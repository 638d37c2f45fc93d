"""Where vectors are kept: cache keys, the in-memory and SQLite stores, and
the session folders that joblib workers share. Imports only ``_core``.
"""
