#!/usr/bin/env python3
"""Independent ESP/AH peer for tools/tests/esptool.rs, built on scapy's
SecurityAssociation (scapy.layers.ipsec; nothing here shares code with the
Rust crates).

  esp_scapy.py decrypt PCAP SAS.json
      Decrypts and authenticates every ESP/AH packet of PCAP (Ethernet or raw
      IP link types) with the SA whose SPI it carries, and prints one line per
      packet: "<index> ok <spi> <seq> <hex of the inner UDP payload>" or
      "<index> fail <reason>". scapy checks the ICV (raises on mismatch); it
      does not check replay or padding contents.

  esp_scapy.py build PCAP SAS.json
      For every SA in SAS.json with a "payloads" list, builds IP/UDP packets
      from "inner_src" to "inner_dst" (ports 40000 -> 40001) carrying each
      payload (hex), encrypts them with seq 1, 2, ... and writes them all to
      PCAP (link type raw IP, 101). Prints "<index> <spi> <hex payload>".

SAS.json: a list of {"proto": "esp"|"ah", "spi": int, "enc": scapy crypt
name, "enc_key": hex, "auth": scapy auth name, "auth_key": hex, "mode":
"transport"|"tunnel", "src": outer src, "dst": outer dst, "inner_src",
"inner_dst", "payloads": [hex, ...]}.
"""

import json
import struct
import sys

from scapy.all import IP, IPv6, UDP, Raw, RawPcapReader, wrpcap, conf  # noqa: F401
from scapy.layers.ipsec import AH, ESP, SecurityAssociation


def make_sa(d):
    proto = ESP if d["proto"] == "esp" else AH
    kw = {}
    if d["proto"] == "esp":
        kw["crypt_algo"] = d["enc"]
        kw["crypt_key"] = bytes.fromhex(d["enc_key"])
    kw["auth_algo"] = d["auth"]
    kw["auth_key"] = bytes.fromhex(d["auth_key"])
    if d.get("mode") == "tunnel":
        if ":" in d["src"]:
            kw["tunnel_header"] = IPv6(src=d["src"], dst=d["dst"])
        else:
            kw["tunnel_header"] = IP(src=d["src"], dst=d["dst"])
    return SecurityAssociation(proto, spi=d["spi"], **kw)


def ip_of(data, linktype):
    if linktype == 1:
        off = 12
        while data[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
            off += 4
        data = data[off + 2:]
    elif linktype not in (101, 228, 229):
        raise SystemExit(f"link type {linktype} not supported")
    return IPv6(data) if data[0] >> 4 == 6 else IP(data)


def decrypt(pcap, sas):
    by_spi = {d["spi"]: (d, make_sa(d)) for d in sas}
    reader = RawPcapReader(pcap)
    linktype = reader.linktype
    for i, (data, _meta) in enumerate(reader, start=1):
        pkt = ip_of(data, linktype)
        layer = ESP if ESP in pkt else AH if AH in pkt else None
        if layer is None:
            print(f"{i} fail no ESP/AH header")
            continue
        spi, seq = pkt[layer].spi, pkt[layer].seq
        if spi not in by_spi:
            print(f"{i} fail unknown spi {spi:#x}")
            continue
        _d, sa = by_spi[spi]
        try:
            inner = sa.decrypt(pkt)
            # scapy leaves AH's payload undissected: parse the bytes again.
            inner = inner.__class__(bytes(inner))
        except Exception as e:  # IPSecIntegrityError and parse errors
            print(f"{i} fail {type(e).__name__}: {e}")
            continue
        if UDP not in inner:
            print(f"{i} fail no inner UDP")
            continue
        print(f"{i} ok {spi:#x} {seq} {bytes(inner[UDP].payload).hex()}")


def build(pcap, sas):
    out = []
    n = 0
    for d in sas:
        sa = make_sa(d)
        ipcls = IPv6 if ":" in d["inner_src"] else IP
        for seq, hexp in enumerate(d.get("payloads", []), start=1):
            pkt = ipcls(src=d["inner_src"], dst=d["inner_dst"]) / UDP(
                sport=40000, dport=40001) / Raw(bytes.fromhex(hexp))
            pkt = ipcls(bytes(pkt))  # fill lengths and checksums
            enc = sa.encrypt(pkt, seq_num=seq)
            out.append(bytes(enc))
            n += 1
            print(f"{n} {d['spi']:#x} {hexp}")
    # Raw IP (LINKTYPE_RAW = 101), written by hand to stay independent of
    # scapy's link-type guessing.
    with open(pcap, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101))
        for k, b in enumerate(out):
            f.write(struct.pack("<IIII", 1_700_000_000 + k, 0, len(b), len(b)))
            f.write(b)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("decrypt", "build"):
        raise SystemExit(__doc__)
    with open(sys.argv[3]) as f:
        sas = json.load(f)
    if sys.argv[1] == "decrypt":
        decrypt(sys.argv[2], sas)
    else:
        build(sys.argv[2], sas)


if __name__ == "__main__":
    main()
