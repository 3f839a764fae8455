"""Fencing: the lease's epoch, the epoch of each controller write, a failed job's reason.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("deployment_events") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=True))
    with op.batch_alter_table("batch_schedules") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("batch_schedules") as batch:
        batch.drop_column("last_error")
    with op.batch_alter_table("deployment_events") as batch:
        batch.drop_column("epoch")
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("epoch")
