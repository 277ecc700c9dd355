"""When an account's rights last shrank, so access tokens minted before it are refused.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made from scratch already has it: 0002 creates `accounts` from schema.py.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("accounts")}
    if "grants_changed_at" not in columns:
        op.add_column("accounts", sa.Column("grants_changed_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("grants_changed_at")
