"""Which pieces an upload accepted: blob stores that keep one object per chunk (S3) hash and
commit exactly those, never whatever a listing finds.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Revision 0001 creates `uploads` from today's schema module, so a fresh database already
    # has the column; only databases created before this revision lack it.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("uploads")}
    if "pieces" not in columns:
        op.add_column("uploads", sa.Column("pieces", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("pieces")
