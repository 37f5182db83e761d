"""Engine-API JWT secrets: generated on the host (never in the repo or a log), one copy per service user.

op-node and op-reth each read their own copy (0600, owned by their user), so neither user can read the
other's files; the copies must be byte-identical, which verify checks: mismatched JWTs are the most
reported failure in peer tools.
"""

from __future__ import annotations

import shlex

from ..model import JwtPlan


def jwt_script(jwt: JwtPlan) -> str:
    """Keep the first existing copy (never replace a secret both sides may use), else make one; copy it."""
    q = shlex.quote
    paths = " ".join(q(p) for p, _ in jwt.copies)
    lines = [
        "set -e",
        "umask 077",
        'src=""',
        f'for f in {paths}; do if [ -s "$f" ]; then src="$f"; break; fi; done',
        'tmp=""',
        # 32 random bytes as 64 hex characters: the format op-node and op-reth read.
        'if [ -z "$src" ]; then tmp=$(mktemp); od -An -N32 -tx1 /dev/urandom | tr -d " \\n" > "$tmp"; src="$tmp"; fi',
    ]
    for path, owner in jwt.copies:
        lines.append(
            f'if [ "$src" != {q(path)} ] && ! cmp -s "$src" {q(path)}; then '
            f'mkdir -p $(dirname {q(path)}); cp "$src" {q(path)}; fi'
        )
        lines.append(f"chown {q(owner)}:{q(owner)} {q(path)}; chmod 0600 {q(path)}")
    lines.append('[ -z "$tmp" ] || rm -f "$tmp"')
    return "; ".join(lines)
