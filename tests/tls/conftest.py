from __future__ import annotations

from collections.abc import Iterator

import pytest
from gearspec.conformance.servers import RunningServer

from tests.tls.certs import Pki, make_pki
from tests.tls.helpers import start_tls_server


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_server(pki: Pki) -> Iterator[RunningServer]:
    """The reference server over TLS, client certificates required, no ACL."""
    with start_tls_server(pki) as running:
        yield running
