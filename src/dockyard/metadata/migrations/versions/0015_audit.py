"""The audit log: who did what to which object, and when (`schema.audit_log`).

Revision ID: 0015
Revises: 0014
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables["audit_log"]])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables["audit_log"]])
