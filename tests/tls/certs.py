"""Test certificates, made fresh per test session with trustme (no key is ever committed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import trustme
from gearspec.conformance.tls import ACL_ROLES

# The identities the ACL tests and the suite's ACL cases use: common name gearspec-ROLE, in
# identities/ROLE.pem, the layout `gearspec test --tls-acl-identities` reads.
IDENTITIES = tuple(f"gearspec-{role}" for role in ACL_ROLES)


@dataclass
class Pki:
    """Paths of one throwaway CA, a server certificate and client certificates signed by it."""

    folder: Path
    ca: Path  # the CA certificate (PEM)
    server: Path  # the server's certificate chain and key in one PEM (for 127.0.0.1 and localhost)
    clients: dict[str, Path] = field(default_factory=dict)  # common name -> certificate and key PEM
    identities: Path | None = None  # the folder for --tls-acl-identities
    untrusted: Path | None = None  # a client certificate from another CA

    def client(self, name: str = "gearspec-client") -> Path:
        return self.clients[name]


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    pki = Pki(folder, folder / "ca.pem", folder / "server.pem")
    ca.cert_pem.write_to_path(str(pki.ca))
    ca.issue_cert("127.0.0.1", "localhost", common_name="gearspec-server").private_key_and_cert_chain_pem.write_to_path(
        str(pki.server)
    )
    pki.identities = folder / "identities"
    pki.identities.mkdir(exist_ok=True)
    for name in IDENTITIES:
        path = pki.identities / f"{name.removeprefix('gearspec-')}.pem"
        ca.issue_cert(f"{name}.invalid", common_name=name).private_key_and_cert_chain_pem.write_to_path(str(path))
        pki.clients[name] = path
    pki.untrusted = folder / "untrusted.pem"
    other = trustme.CA()
    other.issue_cert("intruder.invalid", common_name="gearspec-client").private_key_and_cert_chain_pem.write_to_path(
        str(pki.untrusted)
    )
    return pki
