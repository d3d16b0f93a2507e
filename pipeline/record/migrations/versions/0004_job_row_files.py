"""The SHA-256 of each bulk row's file: the file itself is kept in the store (``bulk/``), so
that any server can hand out what a worker on another machine made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Rows finished before this migration keep no hash: their files stayed in the folder of the
machine that made them, and the API answers that they are not in the store.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE job_rows ADD COLUMN sha256 TEXT")


def downgrade() -> None:
    op.execute("ALTER TABLE job_rows DROP COLUMN sha256")
