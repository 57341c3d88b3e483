"""Fixtures: a real moe-adapter-server process per configuration (plain, token, TLS, mTLS)."""
import os
import re
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DATA = os.environ.get("MOE_TEST_DATA_DIR", os.path.join(ROOT, "tests", "data"))
SERVER = os.environ.get("MOE_SERVER_PATH", os.path.join(ROOT, "build", "server", "moe-adapter-server"))
# The byte-level safetensors reader the acceptance scripts use.
sys.path.insert(0, os.path.join(ROOT, "tests", "acceptance"))


class ServerProcess:
    """moe-adapter-server on 127.0.0.1:<free port>, its address read from the
    `listening on HOST:PORT` line on stderr."""

    def __init__(self, *flags):
        if not os.access(SERVER, os.X_OK):
            raise RuntimeError(f"no server binary at {SERVER} (set MOE_SERVER_PATH)")
        self.proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--metrics-listen", "", *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        found = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr.append(line)
                m = re.search(r"listening on (\S+:\d+)", line)
                if m and not found.is_set():
                    self.address = m.group(1)
                    found.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.time() + 30
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("server did not start: " + "".join(self.stderr)[-2000:])

    def stop(self):
        """SIGTERM: the server drains and exits 0 (returned), having survived the client."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._pump.join(5)
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    s = ServerProcess()
    yield s
    assert s.stop() == 0, "server exit status; stderr: " + "".join(s.stderr)[-2000:]


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """CA, server (localhost, 127.0.0.1) and client certificates, as MakeTestCerts makes them."""
    d = tmp_path_factory.mktemp("certs")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    script = (
        f"set -e; openssl req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=moe-adapter-test-ca;"
        f"openssl req {ec} -keyout server.key -out server.csr -subj /CN=localhost;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile server.ext;"
        f"openssl req {ec} -keyout client.key -out client.csr -subj /CN=moe-adapter-test-client;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2;")
    subprocess.run(["/bin/sh", "-c", script], cwd=d, check=True, capture_output=True)
    return d


def ep_options(mesh):
    """The Client options of a golden case's device mesh: its "ep" coordinate and size."""
    if not mesh:
        return {}
    names = mesh.get("mesh_dim_names") or ["ep"]
    i = names.index("ep") if "ep" in names else 0
    return {"ep_rank": mesh["coord"][i], "ep_size": mesh["shape"][i]}
