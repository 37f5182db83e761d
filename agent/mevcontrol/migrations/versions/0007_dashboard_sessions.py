"""Dashboard sessions in PostgreSQL: a restart of the control plane keeps operators logged in, and every
control plane on this database shares them. Kept by the SHA-256 of the cookie (the table holds nothing a
browser could send), with the operator's token hash at login (a rotated token ends its sessions).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.execute(
        """CREATE TABLE dashboard_sessions (
            session_sha256 text PRIMARY KEY, operator text NOT NULL, operator_token_sha256 text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL)"""
    )
    op.execute("CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at)")
    op.execute("CREATE INDEX dashboard_sessions_created ON dashboard_sessions (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE dashboard_sessions")
