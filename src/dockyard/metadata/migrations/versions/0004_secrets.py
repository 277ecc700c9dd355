"""Secrets every replica shares, such as the token signing key.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables["secrets"]])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["secrets"]])
