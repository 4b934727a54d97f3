#!/usr/bin/env python3
"""Load for bench/api.sh: N concurrent keep-alive clients GET one path for S seconds.

Usage: api_load.py HOST:PORT PATH CLIENTS SECONDS
Prints one JSON object: requests, errors, p50_ms, p99_ms, max_ms.
"""
import asyncio
import json
import sys
import time


async def client(host, port, path, deadline, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while time.monotonic() < deadline:
        start = time.monotonic()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        chunked = False
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await reader.readexactly(length)
        latencies.append(time.monotonic() - start)
        if status != 200:
            errors.append(status)
    writer.close()


async def main():
    address, path, clients, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    latencies, errors = [], []
    await asyncio.gather(
        *(client(host, int(port), path, deadline, latencies, errors) for _ in range(clients))
    )
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    print(json.dumps({
        "requests": len(latencies),
        "errors": len(errors),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 1),
    }))


asyncio.run(main())
