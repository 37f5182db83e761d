"""Engine-API JWT secrets: generated on the host (never in the repo or a log), one copy per service user.

op-node and op-reth each read their own copy (0600, owned by their user), so neither user can read the
other's files; the copies must be byte-identical, which verify checks: mismatched JWTs are the most
reported failure in peer tools.
"""

from __future__ import annotations

import shlex

from ..model import JwtPlan


def jwt_script(jwt: JwtPlan) -> str:
    """Keep the secret most copies already hold, else make one; copy it to every side.

    On a tie the copy listed last wins. The Ethereum pair lists its execution client first, then its two
    beacon nodes: with three different copies the execution client (it resumes at its head by itself)
    and one beacon node are rewritten, never both beacon nodes (restarted at once they come back behind
    the clock with no synced peer). An OP pair lists op-node first: a tie keeps op-reth's copy.

    The deploy predicts which copies this rewrites from their sha256 alone (engine/nodes.py:
    jwt_restarts, the same rule), so the secret itself never leaves the host."""
    q = shlex.quote
    paths = " ".join(q(p) for p, _ in jwt.copies)
    lines = [
        "set -e",
        "umask 077",
        'src=""',
        "best=0",
        f'for f in {paths}; do [ -s "$f" ] || continue; n=0; '
        f'for g in {paths}; do if cmp -s "$f" "$g"; then n=$((n+1)); fi; done; '
        'if [ "$n" -ge "$best" ]; then best=$n; src="$f"; fi; done',
        'tmp=""',
        # 32 random bytes as 64 hex characters: the format op-node and op-reth read.
        'if [ -z "$src" ]; then tmp=$(mktemp); od -An -N32 -tx1 /dev/urandom | tr -d " \\n" > "$tmp"; src="$tmp"; fi',
    ]
    # Each copy rewritten or re-owned is printed: its node must restart (the Ansible role reads this).
    for path, owner in jwt.copies:
        lines += [
            "fixed=0",
            f'if [ "$src" != {q(path)} ] && ! cmp -s "$src" {q(path)}; then '
            f'mkdir -p $(dirname {q(path)}); cp "$src" {q(path)}; fixed=1; fi',
            f'[ "$(stat -c %U:%G:%a {q(path)})" = {q(f"{owner}:{owner}:600")} ] || fixed=1',
            f"chown {q(owner)}:{q(owner)} {q(path)}; chmod 0600 {q(path)}",
            f"[ $fixed = 0 ] || echo {q(path)}",
        ]
    lines.append('[ -z "$tmp" ] || rm -f "$tmp"')
    return "; ".join(lines)
