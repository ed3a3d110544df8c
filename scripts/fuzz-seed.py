#!/usr/bin/env python3
"""Seed the cargo-fuzz corpora from the captured Go traffic.

Reads testdata/vectors/{packets.tsv,lzw.tsv,examples.jsonl} and writes one
file per distinct input to fuzz/corpus/<target>/<sha1 of the bytes>:

  udp_pipeline        every captured UDP datagram, as received
  stream_frame        every captured memberlist TCP stream direction
  memberlist_message  every leaf message: compound, CRC and compress layers
                      of the plaintext datagrams and streams peeled (LZW via
                      the captured buffer/plaintext pairs of lzw.tsv)
  serf_message        Serf messages from user messages and push-pull user
                      state, node meta (tags) and ack payloads (coordinates)
  lzw                 the captured LZW buffers and their plaintexts
  msgpack_skip        message bodies and the RPC streams (msgpack sequences)

The corpus directory is not versioned (see .gitignore): run this before
fuzzing (scripts/fuzz-smoke.sh does). Standard library only.
"""

import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "testdata", "vectors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
TARGETS = ["udp_pipeline", "stream_frame", "memberlist_message", "serf_message", "lzw", "msgpack_skip"]

COMPOUND, USER, COMPRESS, ENCRYPT, HAS_CRC, PUSH_PULL = 7, 8, 9, 10, 12, 6


class Truncated(Exception):
    pass


def read(buf, pos):
    """One msgpack value at pos: (value, next pos). str/bin are bytes."""
    if pos >= len(buf):
        raise Truncated()
    m = buf[pos]
    pos += 1

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise Truncated()
        out = buf[pos:pos + n]
        pos += n
        return out

    def be(n):
        return int.from_bytes(take(n), "big")

    if m <= 0x7F:
        return m, pos
    if m >= 0xE0:
        return m - 0x100, pos
    if 0x80 <= m <= 0x8F or m in (0xDE, 0xDF):
        n = m & 0x0F if m <= 0x8F else be(2 if m == 0xDE else 4)
        out = {}
        for _ in range(n):
            k, pos = read(buf, pos)
            v, pos = read(buf, pos)
            out[k] = v
        return out, pos
    if 0x90 <= m <= 0x9F or m in (0xDC, 0xDD):
        n = m & 0x0F if m <= 0x9F else be(2 if m == 0xDC else 4)
        out = []
        for _ in range(n):
            v, pos = read(buf, pos)
            out.append(v)
        return out, pos
    if 0xA0 <= m <= 0xBF:
        return take(m & 0x1F), pos
    if m in (0xD9, 0xC4):
        return take(be(1)), pos
    if m in (0xDA, 0xC5):
        return take(be(2)), pos
    if m in (0xDB, 0xC6):
        return take(be(4)), pos
    if m == 0xC0:
        return None, pos
    if m in (0xC2, 0xC3):
        return m == 0xC3, pos
    if m == 0xCA:
        return struct.unpack(">f", take(4))[0], pos
    if m == 0xCB:
        return struct.unpack(">d", take(8))[0], pos
    widths = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
    if m in widths:
        raw = take(widths[m])
        return int.from_bytes(raw, "big", signed=m >= 0xD0), pos
    if 0xD4 <= m <= 0xD8:
        take(1 + (1 << (m - 0xD4)))
        return None, pos
    if m in (0xC7, 0xC8, 0xC9):
        take(be({0xC7: 1, 0xC8: 2, 0xC9: 4}[m]) + 1)
        return None, pos
    raise ValueError("bad msgpack marker %#x" % m)


class Seeds:
    def __init__(self, lzw):
        self.lzw = lzw  # compressed bytes -> plaintext bytes
        self.by_target = {t: set() for t in TARGETS}

    def add(self, target, data):
        if data:
            self.by_target[target].add(bytes(data))

    def inflate(self, body):
        """The plaintext of a compress message body (after its type byte)."""
        try:
            m, _ = read(body, 0)
        except (Truncated, ValueError):
            return None
        if not isinstance(m, dict):
            return None
        return self.lzw.get(m.get(b"Buf"))

    def leaf(self, msg):
        """A memberlist message as found in a datagram or stream."""
        if not msg:
            return
        t = msg[0]
        if t == COMPOUND:
            n = msg[1] if len(msg) > 1 else 0
            lens = [int.from_bytes(msg[2 + 2 * i:4 + 2 * i], "big") for i in range(n)]
            pos = 2 + 2 * n
            for length in lens:
                self.leaf(msg[pos:pos + length])
                pos += length
            return
        if t == HAS_CRC:
            self.leaf(msg[5:])
            return
        if t == COMPRESS:
            self.add("memberlist_message", msg)
            plain = self.inflate(msg[1:])
            if plain is not None:
                self.leaf(plain)
            return
        if t == ENCRYPT:
            return  # no AES in the standard library; the raw stream is seeded
        self.add("memberlist_message", msg)
        self.add("msgpack_skip", msg[1:])
        try:
            body, end = read(msg, 1)
        except (Truncated, ValueError):
            body, end = None, len(msg)
        if t == USER:
            self.add("serf_message", msg[1:])
        elif isinstance(body, dict):
            if t == 2 and isinstance(body.get(b"Payload"), bytes):
                self.add("serf_message", body[b"Payload"])  # coordinate
            if t == 4 and isinstance(body.get(b"Meta"), bytes):
                self.add("serf_message", body[b"Meta"])  # tags
            if t == PUSH_PULL:
                n = body.get(b"UserStateLen") or 0
                if n:
                    self.add("serf_message", msg[len(msg) - n:])
                pos = end
                for _ in range(body.get(b"Nodes") or 0):
                    try:
                        state, pos = read(msg, pos)
                    except (Truncated, ValueError):
                        break
                    if isinstance(state, dict) and isinstance(state.get(b"Meta"), bytes):
                        self.add("serf_message", state[b"Meta"])

    def write(self):
        total = 0
        for target, items in self.by_target.items():
            d = os.path.join(CORPUS, target)
            os.makedirs(d, exist_ok=True)
            for data in items:
                name = hashlib.sha1(data).hexdigest()
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            total += len(items)
            print("%-20s %5d seeds" % (target, len(items)))
        return total


def rows(name):
    with open(os.path.join(VECTORS, name)) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            yield line.rstrip("\n").split("\t")


def main():
    lzw = {}
    for compressed, plain in rows("lzw.tsv"):
        lzw[bytes.fromhex(compressed)] = bytes.fromhex(plain)
    seeds = Seeds(lzw)
    for compressed, plain in lzw.items():
        seeds.add("lzw", compressed)
        seeds.add("lzw", plain)

    for scenario, _line, proto, channel, _src, _dst, data in rows("packets.tsv"):
        data = bytes.fromhex(data)
        if channel == "memberlist-udp":
            seeds.add("udp_pipeline", data)
            if scenario not in ("s2_encrypted", "s4_rpc"):  # encrypted captures
                seeds.leaf(data)
        elif channel == "memberlist-tcp":
            seeds.add("stream_frame", data)
            seeds.leaf(data)
        elif channel == "rpc":
            seeds.add("msgpack_skip", data)

    with open(os.path.join(VECTORS, "examples.jsonl")) as f:
        for line in f:
            v = json.loads(line)
            kind, data = v["kind"], bytes.fromhex(v["hex"])
            if kind.startswith("serf "):
                seeds.add("serf_message", data)
            elif kind.startswith("memberlist-stream"):
                seeds.add("stream_frame", data)
                seeds.leaf(data)
            elif kind.startswith("memberlist"):
                seeds.add("udp_pipeline", data)
                seeds.leaf(data)

    if seeds.write() == 0:
        sys.exit("no seeds written")


if __name__ == "__main__":
    main()
