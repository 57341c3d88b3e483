"""Bearer token and TLS (server and mutual) through the Python client, against real servers."""
import grpc
import numpy as np
import pytest
from conftest import ServerProcess

from moe_adapter_client import Client, MoeAdapterError, Tls

GEO = dict(num_experts=2, hidden_size=4, moe_intermediate_size=2)
X = np.arange(16, dtype=np.float32).reshape(4, 4)


def _convert(c):
    return dict(c.to_hf([("model.norm.weight", X)], **GEO))["model.norm.weight"]


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    f = tmp_path_factory.mktemp("token") / "token"
    f.write_text("s3cret-token\n")
    s = ServerProcess("--auth-token-file", str(f))
    yield s
    assert s.stop() == 0


def test_token_required(token_server):
    with Client(token_server.address, timeout=10) as c:
        with pytest.raises(MoeAdapterError) as e:
            c.info()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(MoeAdapterError) as e:
            _convert(c)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert c.health() == "SERVING"  # probes carry no token
    with Client(token_server.address, token="wrong", timeout=10) as c:
        with pytest.raises(MoeAdapterError) as e:
            _convert(c)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_token_accepted(token_server):
    with Client(token_server.address, token="s3cret-token", timeout=10) as c:
        assert c.info()["rpcs"] == ["ToHF", "FromHF", "ConvertTensor"]
        np.testing.assert_array_equal(_convert(c), X)


@pytest.fixture(scope="module")
def tls_server(certs):
    s = ServerProcess("--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"))
    yield s
    assert s.stop() == 0


def test_tls(tls_server, certs):
    with Client(tls_server.address, tls=Tls(ca=str(certs / "ca.pem")), timeout=10) as c:
        np.testing.assert_array_equal(_convert(c), X)
        assert c.health() == "SERVING"
    # PEM bytes work as well as paths; the server name may differ from the target's host.
    tls = Tls(ca=(certs / "ca.pem").read_bytes(), server_name="localhost")
    with Client(tls_server.address, tls=tls, timeout=10) as c:
        assert c.info()["version"]


def test_tls_refused(tls_server, certs):
    with Client(tls_server.address, timeout=5) as c:  # plaintext to a TLS server
        with pytest.raises(MoeAdapterError) as e:
            c.info()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
    with Client(tls_server.address, tls=True, timeout=5) as c:  # system roots do not know the test CA
        with pytest.raises(MoeAdapterError) as e:
            c.info()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(certs):
    s = ServerProcess("--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
                      "--tls-client-ca", str(certs / "ca.pem"))
    try:
        with Client(s.address, tls=Tls(ca=str(certs / "ca.pem")), timeout=5) as c:
            with pytest.raises(MoeAdapterError) as e:
                c.info()
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
        tls = Tls(ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"), key=str(certs / "client.key"))
        with Client(s.address, tls=tls, timeout=10) as c:
            np.testing.assert_array_equal(_convert(c), X)
    finally:
        assert s.stop() == 0
    with pytest.raises(ValueError):
        Client("127.0.0.1:1", tls=Tls(cert=str(certs / "client.pem")))
