"""What the bench scripts share: a free loopback port, and a `knowledgebeast serve` child process
started on it and waited for until /ready answers 200. Standard library only."""
import http.client
import os
import socket
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(binary, data_dir, token, extra_args=(), extra_env=None,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300):
    """Starts `binary serve` on `data_dir` with admin token `token`; returns (process, port) once
    it is ready. Exits the script if the server dies or is not ready within `timeout` seconds."""
    port = free_port()
    env = dict(os.environ, KB_ADMIN_TOKEN=token, **(extra_env or {}))
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", str(port),
                             *extra_args], env=env, stdout=stdout, stderr=stderr)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{os.path.basename(sys.argv[0])}: the server exited during start-up")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/ready")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"{os.path.basename(sys.argv[0])}: the server did not become ready")
