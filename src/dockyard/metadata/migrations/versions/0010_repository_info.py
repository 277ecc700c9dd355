"""Repository information: the description and README shown on a repository's page.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables["repository_info"]])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["repository_info"]])
