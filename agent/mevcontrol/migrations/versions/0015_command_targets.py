"""A command sent to several agents (an emergency stop, a limits change: one command id for the fleet) is
recorded once per agent: the key of `commands` becomes (id, target). Before, the first agent's row took the
id and the others' were dropped by ON CONFLICT, so the history named one agent of a broadcast.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.execute("ALTER TABLE commands DROP CONSTRAINT commands_pkey, ADD PRIMARY KEY (id, target)")


def downgrade() -> None:
    # Back to one row per id: a broadcast keeps the row of its first agent by name.
    op.execute(
        """DELETE FROM commands c USING commands d
           WHERE c.id = d.id AND c.target > d.target"""
    )
    op.execute("ALTER TABLE commands DROP CONSTRAINT commands_pkey, ADD PRIMARY KEY (id)")
