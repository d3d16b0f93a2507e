"""Number reservations: a number taken for a document that was never recorded (the render
failed, the process was killed) is given to the next document, so sequences have no gaps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bigint = "BIGINT" if op.get_bind().dialect.name == "postgresql" else "INTEGER"
    # used_by: the document (or "generated:…" for a file) the number went to; NULL while
    # reserved. holder: who reserved it; lease_until: when it may be given to another.
    op.execute(f"""CREATE TABLE IF NOT EXISTS number_reservations (
        scope TEXT NOT NULL,
        seq {bigint} NOT NULL,
        holder TEXT NOT NULL,
        lease_until TEXT NOT NULL,
        used_by TEXT,
        PRIMARY KEY (scope, seq))""")
    op.execute("CREATE INDEX IF NOT EXISTS number_reservations_free ON number_reservations "
               "(scope, used_by, lease_until)")


def downgrade() -> None:
    op.execute("DROP TABLE number_reservations")
