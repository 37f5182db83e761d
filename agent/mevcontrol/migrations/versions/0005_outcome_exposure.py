"""Each execution's sandwich exposure (what an optimal sandwich could have taken from it had it been public):
exact in the outcome's token, and in USD at the outcome's `token_usd_per_unit`; NULL when not priced.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE outcomes ADD COLUMN sandwich_exposure numeric(78,0), ADD COLUMN sandwich_exposure_usd numeric"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE outcomes DROP COLUMN sandwich_exposure, DROP COLUMN sandwich_exposure_usd")
