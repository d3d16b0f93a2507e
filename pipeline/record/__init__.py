"""The record layer: database, content-addressed store, hash-chained ledger, atomic files."""
