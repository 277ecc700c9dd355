"""Events and webhooks: the webhooks, their delivery state and log, and the outbox of events
written in the transaction of each change they report.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("webhooks", "webhook_state", "event_outbox", "webhook_deliveries")


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[name] for name in TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[name] for name in TABLES])
