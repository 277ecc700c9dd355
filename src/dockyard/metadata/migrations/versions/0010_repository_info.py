"""Repository information: the description and README shown on a repository's page, and an
index of each repository's tags by when they were pushed, the order that page lists them in.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from dockyard.metadata.schema import metadata

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables["repository_info"]])
    # Revision 0001 creates `tags` from today's schema module, so a fresh database already
    # has the index; only databases created before this revision lack it.
    if "ix_tags_pushed" not in {i["name"] for i in sa.inspect(bind).get_indexes("tags")}:
        op.create_index("ix_tags_pushed", "tags", ["repository_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tags_pushed", "tags")
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["repository_info"]])
