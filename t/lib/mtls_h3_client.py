#!/usr/bin/env python3
"""An HTTP/3 client for the tests, driven line by line (t/lib/Mtls.pm's
Mtls::H3 runs it): one QUIC connection, with a client certificate, on which
requests are made when the test says so.

    mtls_h3_client.py --port PORT [--cert CRT --key KEY] [--ticket FILE]
                      [--resume] [--early]

Commands on standard input, one JSON line on standard output for each:

    GET /a [/b ...]   the paths as concurrent streams; answers
                      {"responses": [{"status", "headers", "body"} or
                      {"status": "reset", "error": code}, ...]}
    INFO              waits for the handshake; answers {"handshake",
                      "resumed", "early_data_accepted", "local_port",
                      "requests", "terminated"}
    TICKET            waits (2 s at most) for a session ticket, saved to
                      --ticket; answers {"ticket": true|false}
    QUIT              closes the connection; answers {"closed": true}

The first line is {"ready": true}, or {"error": "..."} if the handshake
failed. With --resume the ticket in --ticket is offered; with --early the
first GET is sent at once, as 0-RTT data where the ticket allows it, rather
than after the handshake.
"""

import argparse
import asyncio
import json
import os
import pickle
import ssl
import sys

import aioquic.tls
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamReset

TIMEOUT = 10

# aioquic writes a ClientHello that offers a session into a scratch buffer
# of 1 KiB; nginx's stateless tickets carry the client certificate and
# often do not fit. Its scratch buffers get 16 KiB, as its CRYPTO buffers.
_buffer = aioquic.tls.Buffer


def _roomy_buffer(capacity=0, data=None):
    if data is not None:
        return _buffer(data=data)
    return _buffer(capacity=max(capacity, 16384))


aioquic.tls.Buffer = _roomy_buffer


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending = {}  # stream id -> [future, response]
        self.requests = 0
        self.terminated = None
        self.handshake = None  # the HandshakeCompleted event
        self.settled = asyncio.Event()  # handshake completed or failed

    def request(self, authority, path):
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        self.h3.send_headers(stream_id, headers, end_stream=True)
        future = asyncio.get_running_loop().create_future()
        self.pending[stream_id] = [future, {"headers": {}, "body": b""}]
        self.requests += 1
        self.transmit()
        return future

    def _done(self, stream_id, result):
        entry = self.pending.pop(stream_id, None)
        if entry and not entry[0].done():
            entry[0].set_result(result)

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.handshake = event
            self.settled.set()
        if isinstance(event, StreamReset):
            self._done(event.stream_id, {"status": "reset", "error": event.error_code})
            return
        if isinstance(event, ConnectionTerminated):
            self.terminated = event.reason_phrase or str(event.error_code)
            self.settled.set()
            for stream_id in list(self.pending):
                self._done(stream_id, {"status": "closed", "error": self.terminated})
        for h3_event in self.h3.handle_event(event):
            entry = self.pending.get(getattr(h3_event, "stream_id", None))
            if entry is None:
                continue
            response = entry[1]
            if isinstance(h3_event, HeadersReceived):
                for name, value in h3_event.headers:
                    name = name.decode().lower()
                    value = value.decode(errors="replace")
                    if name == ":status":
                        response["status"] = value
                    elif name in response["headers"]:
                        response["headers"][name] += ", " + value
                    else:
                        response["headers"][name] = value
            elif isinstance(h3_event, DataReceived):
                response["body"] += h3_event.data
            if getattr(h3_event, "stream_ended", False):
                response["body"] = response["body"].decode(errors="replace")
                self._done(h3_event.stream_id, response)


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ticket")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--early", action="store_true")
    args = parser.parse_args()

    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.verify_mode = ssl.CERT_NONE
    config.server_name = args.host
    if args.cert:
        config.load_cert_chain(args.cert, args.key)
    if args.resume:
        with open(args.ticket, "rb") as f:
            config.session_ticket = pickle.load(f)

    ticket_saved = asyncio.Event()

    def save_ticket(ticket):
        if args.ticket:
            tmp = args.ticket + ".tmp"
            with open(tmp, "wb") as f:
                pickle.dump(ticket, f)
            os.replace(tmp, args.ticket)
        ticket_saved.set()

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    try:
        async with connect(
            "127.0.0.1",
            args.port,
            configuration=config,
            create_protocol=Client,
            session_ticket_handler=save_ticket,
            wait_connected=not args.early,
        ) as client:
            say({"ready": True})
            await serve(client, stdin, args, ticket_saved)
    except (ConnectionError, asyncio.TimeoutError, OSError) as e:
        say({"error": "%s: %s" % (type(e).__name__, e)})
        return 1
    return 0


async def serve(client, stdin, args, ticket_saved):
    authority = "%s:%d" % (args.host, args.port)
    while True:
        line = (await stdin.readline()).decode().split()
        if not line or line[0] == "QUIT":
            client.close()
            await client.wait_closed()
            say({"closed": True})
            return
        if line[0] == "GET":
            futures = [client.request(authority, path) for path in line[1:]]
            try:
                responses = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
            except asyncio.TimeoutError:
                responses = [f.result() if f.done() else {"status": "timeout"} for f in futures]
            say({"responses": responses})
        elif line[0] == "INFO":
            try:
                await asyncio.wait_for(client.settled.wait(), TIMEOUT)
            except asyncio.TimeoutError:
                pass
            done = client.handshake
            say({
                "handshake": done is not None,
                "resumed": bool(done and done.session_resumed),
                "early_data_accepted": bool(done and done.early_data_accepted),
                "local_port": client._transport.get_extra_info("sockname")[1],
                "requests": client.requests,
                "terminated": client.terminated,
            })
        elif line[0] == "TICKET":
            try:
                await asyncio.wait_for(ticket_saved.wait(), 2)
            except asyncio.TimeoutError:
                pass
            say({"ticket": ticket_saved.is_set()})
        else:
            say({"error": "unknown command %s" % line[0]})


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
