"""The Python client over a Unix socket (docs/server.md, "Unix sockets"): one server listening on
127.0.0.1 and on unix:///... at once gives the same conversion through both targets."""
import os
import time

import numpy as np
from conftest import ServerProcess

from moe_adapter_client import Client


def test_unix_socket_target(tmp_path):
    sock = os.path.join(str(tmp_path), "adapter.sock")
    server = ServerProcess("--listen", f"unix://{sock}")
    try:
        deadline = time.time() + 10  # the TCP line (first) is what ServerProcess waits for
        while not any(f"listening on unix://{sock}" in line for line in server.stderr):
            assert time.time() < deadline, server.stderr
            time.sleep(0.05)
        e, h, i = 4, 8, 6
        gate_up = np.arange(e * h * 2 * i, dtype=np.float32).reshape(e, h, 2 * i)
        geometry = {"num_experts": e, "hidden_size": h, "moe_intermediate_size": i}
        name = "model.layers.0.mlp.experts.gate_and_up_projs"
        results = []
        for target in (server.address, f"unix://{sock}"):
            with Client(target, timeout=30) as c:
                assert c.health() == "SERVING"
                results.append({k: (a.dtype.str, a.shape, a.tobytes())
                                for k, a in c.convert_tensor(name, gate_up, **geometry)})
        assert len(results[1]) == 2 * e
        assert results[0] == results[1]
        # Expert 1's gate projection: its [H, I] half of the grouped tensor, transposed.
        got = results[1]["model.layers.0.mlp.experts.1.gate_proj.weight"]
        assert got[2] == np.ascontiguousarray(gate_up[1, :, :i].T).tobytes()
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]
    assert not os.path.exists(sock), "the drained server left its socket file"
