"""Cold start of the Lambda mode: process start to the first `GET .../invocation/next` (ready for an event).

Usage: python3 bench/coldstart.py <binary> [runs]     prints the median and max in ms, as JSON

A minimal Lambda Runtime API listens on loopback; the binary starts with `AWS_LAMBDA_RUNTIME_API` pointing at
it (and dummy credentials, so nothing reaches the network). The clock starts right before the process is
spawned and stops when its first request for an event arrives; the process is then killed. This is what the
Lambda "Init duration" measures, minus downloading and unpacking the package.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def once(binary):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "hourly-insights",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "cold-start-probe",
        "AWS_SECRET_ACCESS_KEY": "cold-start-probe",
        "OUTPUT_BUCKET": "hourly-insights-output",
    }
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.settimeout(10)
    try:
        conn, _ = server.accept()
        request = conn.recv(4096).decode(errors="replace")
        ready = time.perf_counter()
        if "/runtime/invocation/next" not in request.split("\r\n", 1)[0]:
            raise SystemExit(f"unexpected first request: {request[:80]!r}")
        conn.close()
    finally:
        proc.kill()
        proc.wait()
        server.close()
    return (ready - started) * 1000


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    once(binary)  # warm the page cache: Lambda's own cold start includes fetching the package, not measured
    samples = [once(binary) for _ in range(runs)]
    print(json.dumps({"median_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2),
                      "runs": runs}))


if __name__ == "__main__":
    main()
