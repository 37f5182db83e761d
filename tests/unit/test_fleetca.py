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


def test_isolated_devnets_keep_their_secrets_apart(tmp_path, monkeypatch):
    """Integration fleets deploy side by side from one machine: each must have its own CA directory (the CA,
    the agents' bus passwords and the Redis ACL file), or one fleet's deploy copies the other's ACL file."""
    from mevfleet.devnet.fleet import isolated_devnet
    from mevfleet.fleetca import ca_dir
    from mevfleet.inventory import load_inventory

    monkeypatch.delenv("MEVFLEET_CA_DIR", raising=False)
    fleets = {}
    for prefix, subnet in (("it", "172.30.90.0/24"), ("mon", "172.30.91.0/24")):
        (tmp_path / prefix).mkdir()
        fleets[prefix] = load_inventory(isolated_devnet(prefix, f"net-{prefix}", subnet, tmp_path / prefix)).fleet.name
    assert fleets == {"it": "devnet-it", "mon": "devnet-mon"}
    assert ca_dir(fleets["it"]) != ca_dir(fleets["mon"])
