"""folder programs and dependencies

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A program may be a folder, stored as a zip archive with its entry module named;
``source`` keeps the entry module's text. ``dependencies`` are the pip requirements
the program declared, checked against the server's program environment at upload.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("programs", sa.Column("archive", sa.LargeBinary(), nullable=True))
    op.add_column("programs", sa.Column("entry_point", sa.String(length=200), nullable=True))
    op.add_column("programs", sa.Column("dependencies", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("programs", "dependencies")
    op.drop_column("programs", "entry_point")
    op.drop_column("programs", "archive")
