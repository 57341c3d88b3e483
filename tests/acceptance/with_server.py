#!/usr/bin/env python3
"""Runs a command against a real server process: starts SERVER --listen 127.0.0.1:0 (metrics off), reads
the port it prints, runs COMMAND... --server 127.0.0.1:PORT, stops the server, exits with the command's status.

usage: with_server.py SERVER COMMAND [ARGS...]
"""
import re
import subprocess
import sys
import tempfile
import time


def main():
    server, cmd = sys.argv[1], sys.argv[2:]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([server, "--listen", "127.0.0.1:0", "--metrics-listen", ""], stderr=log, stdout=log)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            log.seek(0)
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read())
            port = m.group(1).decode() if m else None
        if port is None:
            log.seek(0)
            print(f"server did not start: {log.read()[-2000:]!r}", file=sys.stderr)
            return 1
        return subprocess.call(cmd + ["--server", f"127.0.0.1:{port}"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
