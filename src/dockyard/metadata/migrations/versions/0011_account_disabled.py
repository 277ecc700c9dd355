"""When an administrator disabled an account: while set, nothing signs in as it and none of
its tokens or sessions is honoured; enabling it clears the mark and restores them.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made from scratch already has it: 0002 creates `accounts` from schema.py.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("accounts")}
    if "disabled_at" not in columns:
        op.add_column("accounts", sa.Column("disabled_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("disabled_at")
