#!/usr/bin/python3
"""Sends one Info-Request (draft-ietf-lisp-nat-traversal section 5), signed with HMAC-SHA-256, from UDP port SPORT to
ADDRESS:PORT: what an xTR behind NAT sends an RTR's data port so that the RTR learns the binding of one EID prefix.
bench-capacity.sh uses it to give `fastxtr rtr` its two ends without a NAT.

    info_request.py ADDRESS PORT SPORT IID PREFIX/LEN KEY-ID SECRET
"""
import hashlib
import hmac
import socket
import struct
import sys
import time

if len(sys.argv) != 8:
    sys.exit(__doc__)
address, port, sport, iid, prefix, key_id, secret = sys.argv[1:]
network, length = prefix.split("/")
# The EID prefix as an Instance-ID LCAF (RFC 8060 section 4.1) around an IPv4 address (AFI 1).
eid = struct.pack("!HBBBBHIH", 16387, 0, 0, 2, 0, 4 + 2 + 4, int(iid), 1) + socket.inet_aton(network)
# Nonces rise with the clock: an RTR takes a binding only from a nonce above the last one it took for the prefix.
nonce = int(time.time() * 1000) << 16
header = struct.pack("!IQBBH", 0x70000000, nonce, int(key_id), 2, 32)
tail = struct.pack("!IBB", 1, 0, int(length)) + eid + struct.pack("!H", 0)
unsigned = header + bytes(32) + tail
digest = hmac.new(secret.encode(), unsigned, hashlib.sha256).digest()
message = header + digest + tail
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sport)))
s.sendto(message, (address, int(port)))
