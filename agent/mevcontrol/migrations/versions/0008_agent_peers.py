"""Each agent's node peer counts per chain from its heartbeat (the execution node's and the beacon node's),
for the dashboard's health view.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.execute(
        """ALTER TABLE agents ADD COLUMN peers jsonb NOT NULL DEFAULT '{}'::jsonb,
           ADD COLUMN beacon_peers jsonb NOT NULL DEFAULT '{}'::jsonb"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE agents DROP COLUMN beacon_peers, DROP COLUMN peers")
