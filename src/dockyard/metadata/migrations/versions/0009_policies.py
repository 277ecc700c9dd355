"""Immutable tag rules: patterns per namespace or repository.

Revision ID: 0009
Revises: 0007
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ["immutable_tag_rules"]


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[n] for n in TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[n] for n in TABLES])
