#!/usr/bin/env python3
"""scapy as an independent ESP/AH peer for ipsec-esp's interop test.

Usage: scapy_peer.py CASES.jsonl RESULTS.tsv

Each input line describes one SA and carries packets our crate built
("ours", hex) and the plaintext they must decrypt to ("plain", hex). For
each case this script
  1. decrypts and verifies every one of our packets with scapy's
     SecurityAssociation and compares the result with the plaintext;
  2. encrypts the plaintext with scapy (sequence number "their_seq") so the
     Rust side can decapsulate it ("theirs", hex).
Results go to RESULTS (tab-separated: id, verdicts joined by "|", scapy's
packet in hex or "-"), one line per case. One process handles the
whole matrix (scapy takes about a second to start).
"""
import json
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, AH, SecurityAssociation, IPSecIntegrityError


def build_sa(c):
    kw = {}
    if c["proto"] == "ESP":
        kw["crypt_algo"] = c["enc"]
        kw["crypt_key"] = bytes.fromhex(c["ek"]) if c["ek"] else None
    if c["auth"] != "NULL":
        kw["auth_algo"] = c["auth"]
        kw["auth_key"] = bytes.fromhex(c["ak"])
    if c["tunnel"]:
        kw["tunnel_header"] = (IPv6 if c["v6"] else IP)(src=c["src"], dst=c["dst"])
    if c["udp"]:
        kw["nat_t_header"] = UDP(sport=4500, dport=4500)
    if c["esn"]:
        kw["esn_en"] = True
        kw["esn"] = c["esn_hi"]
    return SecurityAssociation(ESP if c["proto"] == "ESP" else AH, spi=c["spi"], **kw)


def parse(c, raw):
    return (IPv6 if c["v6"] else IP)(raw)


def run_case(c):
    out = {"id": c["id"]}
    try:
        sa = build_sa(c)
    except Exception as e:  # unsupported algorithm in this scapy
        out["decrypt"] = "unsupported: %s" % e
        return out
    plain = bytes.fromhex(c["plain"])
    verdicts = []
    for h in c["ours"]:
        try:
            got = bytes(sa.decrypt(parse(c, bytes.fromhex(h))))
            verdicts.append("ok" if got == plain else "mismatch: %s" % got.hex())
        except IPSecIntegrityError as e:
            verdicts.append("icv: %s" % e)
        except Exception as e:
            verdicts.append("error: %r" % e)
    out["decrypt"] = verdicts
    try:
        pkt = parse(c, plain)
        enc = sa.encrypt(pkt, seq_num=c["their_seq"])
        out["theirs"] = bytes(enc).hex()
    except Exception as e:
        out["encrypt_error"] = repr(e)
    return out


def main():
    cases = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    def clean(s):
        return s.replace("\t", " ").replace("\n", " ").replace("|", "/")

    with open(sys.argv[2], "w") as f:
        for c in cases:
            r = run_case(c)
            d = r["decrypt"]
            verdicts = "|".join(clean(v) for v in d) if isinstance(d, list) else clean(d)
            theirs = r.get("theirs") or "-"
            if "encrypt_error" in r:
                verdicts += "|encrypt: " + clean(r["encrypt_error"])
            f.write("%s\t%s\t%s\n" % (r["id"], verdicts, theirs))


if __name__ == "__main__":
    main()
