"""The first schema: repositories, blobs, links, manifests, references, tags, uploads.

Revision ID: 0001
Revises:
"""

from alembic import op

from dockyard.metadata.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The baseline is the schema module as it stood at this revision; later changes get their own
# revisions with explicit operations.
TABLES = [
    "repositories",
    "blobs",
    "repository_blobs",
    "manifests",
    "manifest_references",
    "tags",
    "uploads",
]


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[name] for name in TABLES])


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind, tables=[metadata.tables[name] for name in reversed(TABLES)])
