"""Signature policies: per namespace or repository, the keys and trust-store roots whose
signatures a manifest needs before it is served, and whether that is enforced or only warned.

Revision ID: 0012
Revises: 0010 (the lead re-chains it after 0011)
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables["signature_policies"]])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["signature_policies"]])
