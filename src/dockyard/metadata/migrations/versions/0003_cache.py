"""Pull-through cache: when each cached tag was last checked against its upstream.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables["cached_tags"]])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["cached_tags"]])
