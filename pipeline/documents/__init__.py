"""The document use cases: state folded from the ledger, create, sign, upload, the other
steps, close, notify, follow-up."""
