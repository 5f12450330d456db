"""A real DNS server (dnslib, UDP on 127.0.0.1, a free port) whose answers a test sets.

Names get a sequence of A/AAAA answers: each query of a name takes the next answer and the
last one repeats, so a test can make a name change its answer between two lookups (DNS
rebinding). Every answer has TTL 0, as a rebinding attacker's would.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer


@dataclass
class _Name:
    answers: list[list[str]]
    served: int = 0


@dataclass
class ProgrammableDNS(BaseResolver):  # type: ignore[misc]
    names: dict[str, _Name] = field(default_factory=dict)
    queries: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: DNSServer | None = None

    @property
    def nameserver(self) -> str:
        assert self._server is not None
        host, port = self._server.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data")
        self._server = DNSServer(self, address="127.0.0.1", port=0, logger=quiet)
        self._server.start_thread()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()

    def answer(self, name: str, *answers: Sequence[str]) -> None:
        """Answer `name` with these address lists, one per lookup; the last one repeats."""
        with self._lock:
            self.names[name.lower().rstrip(".")] = _Name([list(a) for a in answers])

    def lookups(self, name: str) -> int:
        """How many A lookups of `name` were made (each resolution makes one)."""
        with self._lock:
            return sum(1 for qname, qtype in self.queries if qname == name and qtype == "A")

    def reset(self) -> None:
        with self._lock:
            self.names.clear()
            self.queries.clear()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((qname, qtype))
            entry = self.names.get(qname)
            if entry is None:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            # A resolution asks for A, then AAAA: the A query moves to the next answer and the
            # AAAA query that follows gets the same one.
            if qtype == "A":
                entry.served += 1
            index = min(max(entry.served - 1, 0), len(entry.answers) - 1)
            addresses = entry.answers[index]
        for text in addresses:
            address = ipaddress.ip_address(text)
            if qtype == "A" and address.version == 4:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(text), ttl=0))
            elif qtype == "AAAA" and address.version == 6:
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(text), ttl=0))
        return reply
