"""Audit: verification reports, the offline audit bundle, the quarterly review."""
