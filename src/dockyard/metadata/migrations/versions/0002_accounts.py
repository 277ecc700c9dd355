"""Accounts: users and organisations, memberships, access tokens, repository visibility.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ["accounts", "memberships", "access_tokens", "repository_settings"]


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[name] for name in TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[n] for n in reversed(TABLES)])
