#!/usr/bin/env python3
"""Raw-socket clients for t/http.pl: what a browser or curl never sends, to check that
snowlink-http holds at the edge. Each command prints one line for the test to compare.

  smuggle PORT               a request with both Content-Length and Transfer-Encoding, and a second
                             request hidden after its chunked body: "RESPONSES STATUS closed|open"
  stalled-uploads PORT N PID N uploads without a token that send 1 MB of a 2 MB body and stall:
                             "401s COUNT, growth under 100 MB: yes|no (MB)"
  slow-body PORT TOKEN       an upload with the token whose body stops coming: "STATUS"
  half-open PORT N           N connections that never finish their request head, then a normal
                             request once they are closed: "CLOSED STATUS"
  parallel PORT N PATH       N requests at once: each status, sorted, and whether all answered
                             within 15 s
"""

import resource
import socket
import sys
import time

HOST = "127.0.0.1"
SHORT = 30  # seconds; every wait has an end


def connect(port, timeout=SHORT):
    connection = socket.create_connection((HOST, port), timeout=timeout)
    return connection


def read_all(connection, deadline=None):
    """Everything the server sends until it closes the connection, or until the deadline (by
    default SHORT seconds from now)."""
    data = b""
    deadline = deadline or time.monotonic() + SHORT
    while time.monotonic() < deadline:
        connection.settimeout(max(0.01, min(1, deadline - time.monotonic())))
        try:
            chunk = connection.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def status_of(response):
    line = response.split(b"\r\n", 1)[0].split()
    return line[1].decode() if len(line) > 1 else "none"


def smuggle(port):
    hidden = b"GET /found HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        b"POST /links HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden
    )
    connection = connect(port)
    connection.sendall(request)
    data, closed = read_all(connection)
    responses = data.count(b"HTTP/1.1 ")
    print(responses, status_of(data), "closed" if closed else "open")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def stalled_uploads(port, count, pid):
    before = rss_mb(pid)
    head = (
        b"POST /links HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\n\r\n"
    )
    connections = []
    for _ in range(count):
        connection = connect(port)
        connection.sendall(head)
        try:
            connection.settimeout(0.2)
            connection.sendall(b"x" * (1 << 20))
        except OSError:
            pass  # refused already
        connections.append(connection)
    peak = rss_mb(pid)
    unauthorized = 0
    deadline = time.monotonic() + SHORT
    for connection in connections:
        data, _ = read_all(connection, deadline)
        unauthorized += status_of(data) == "401"
        connection.close()
    growth = peak - before
    print(f"401s {unauthorized}, growth under 100 MB: {'yes' if growth < 100 else 'no'} ({growth} MB)")


def slow_body(port, token):
    connection = connect(port)
    connection.sendall(
        b"POST /links HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"url\": "
    )
    data, _ = read_all(connection)
    print(status_of(data))


def half_open(port, count):
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 256, count + 256))
    connections = []
    for _ in range(count):
        try:
            connection = connect(port, timeout=5)
            connection.sendall(b"GET /found HTTP/1.1\r\nHost: x\r\n")
            connections.append(connection)
        except OSError:
            pass
    # Every one of them is closed by the server: at once when it is over the limit, else when its
    # head has not come within the header timeout.
    closed = 0
    deadline = time.monotonic() + SHORT
    for connection in connections:
        _, was_closed = read_all(connection, deadline)
        closed += was_closed
        connection.close()
    normal = connect(port)
    normal.sendall(b"GET /found HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data, _ = read_all(normal)
    print("all" if closed == len(connections) else f"{closed} of {len(connections)}", status_of(data))


def parallel(port, count, path):
    connections = []
    started = time.monotonic()
    for _ in range(count):
        connection = connect(port)
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        connections.append(connection)
    statuses = []
    deadline = time.monotonic() + SHORT
    for connection in connections:
        data, _ = read_all(connection, deadline)
        statuses.append(status_of(data))
    within = time.monotonic() - started < 15
    print(" ".join(sorted(statuses)), "within 15 s" if within else "late")


def main():
    command, port = sys.argv[1], int(sys.argv[2])
    arguments = sys.argv[3:]
    if command == "smuggle":
        smuggle(port)
    elif command == "stalled-uploads":
        stalled_uploads(port, int(arguments[0]), int(arguments[1]))
    elif command == "slow-body":
        slow_body(port, arguments[0])
    elif command == "half-open":
        half_open(port, int(arguments[0]))
    elif command == "parallel":
        parallel(port, int(arguments[0]), arguments[1])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
