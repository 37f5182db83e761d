"""The fleet CA for log shipping, checked with the real openssl: a host certificate verifies against the CA
as TLS client and server, keys are owner-only, a second deploy re-issues nothing, a new address does."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mevfleet.fleetca import ensure_host

OPENSSL = shutil.which("openssl")


def test_host_certificates_from_the_fleet_ca(tmp_path):
    directory = tmp_path / "ca"
    first = ensure_host(directory, "devnet", "eth1", "172.30.87.11")
    assert directory.stat().st_mode & 0o777 == 0o700
    for key in (directory / "ca.key", first.key):
        assert key.stat().st_mode & 0o777 == 0o600, key
    cert = first.cert.read_bytes()
    again = ensure_host(directory, "devnet", "eth1", "172.30.87.11")
    assert again.cert.read_bytes() == cert, "a second deploy must not re-issue (and restart the shippers)"
    moved = ensure_host(directory, "devnet", "eth1", "172.30.87.21")
    assert moved.cert.read_bytes() != cert, "a new address needs a new certificate"
    if OPENSSL is None:
        pytest.skip("openssl not installed: chain not checked")
    for purpose in ("sslclient", "sslserver"):
        out = subprocess.run(
            [OPENSSL, "verify", "-purpose", purpose, "-CAfile", str(first.ca), str(moved.cert)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0 and ": OK" in out.stdout, out.stdout + out.stderr
    other = ensure_host(tmp_path / "other", "devnet", "eth1", "172.30.87.21")
    out = subprocess.run([OPENSSL, "verify", "-CAfile", str(first.ca), str(other.cert)], capture_output=True, text=True)
    assert out.returncode != 0, "another fleet's certificate must not verify"
