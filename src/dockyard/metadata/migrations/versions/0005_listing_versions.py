"""Versions of what listings show: per repository for its tags, one for the catalog.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ["tag_versions", "listing_versions"]


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[n] for n in TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[n] for n in TABLES])
