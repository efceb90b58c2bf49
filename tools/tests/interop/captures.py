"""Rewrites a capture into another link type or byte order with scapy (code
nobody here wrote), for tools/tests/captures.rs: the tools must read each
form as they read the original.

usage: captures.py FORM IN OUT

FORM is one of
  raw    raw IP, link type 101
  ipv4   raw IPv4, link type 228 (every packet must be IPv4)
  sll    Linux cooked capture v1, link type 113 (tcpdump -i any)
  sll2   Linux cooked capture v2, link type 276 (tcpdump -i any, libpcap >= 1.10)
  be     the same frames in a big-endian pcap

IN is a pcap or pcapng of Ethernet or raw IP packets; every packet must be
IPv4 or IPv6. Timestamps are kept. Prints the number of packets written.
"""

import sys

from scapy.all import IP, IPv6, PcapWriter, Raw, rdpcap, wrpcap
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Ether

MAC = b"\x02\x00\x00\x00\x00\x01"


def ip_of(p):
    """The IP packet of a frame, without the Ethernet padding."""
    if IP in p:
        ip = p[IP]
        return bytes(ip)[: ip.len], 0x0800
    if IPv6 in p:
        ip = p[IPv6]
        return bytes(ip)[: 40 + ip.plen], 0x86DD
    raise SystemExit(f"not an IP packet: {p.summary()}")


def main():
    form, src, dst = sys.argv[1:4]
    packets = rdpcap(src)
    out = []
    for i, p in enumerate(packets):
        ip, ethertype = ip_of(p)
        # Alternate incoming (0) and outgoing (4) as `tcpdump -i any` shows.
        pkttype = 4 * (i % 2)
        if form in ("raw", "ipv4"):
            q = Raw(ip)
        elif form == "sll":
            q = CookedLinux(
                pkttype=pkttype, lladdrtype=1, lladdrlen=6, src=MAC, proto=ethertype
            ) / Raw(ip)
        elif form == "sll2":
            q = CookedLinuxV2(
                proto=ethertype,
                ifindex=2,
                lladdrtype=1,
                pkttype=pkttype,
                lladdrlen=6,
                src=MAC,
            ) / Raw(ip)
        elif form == "be":
            q = p
        else:
            raise SystemExit(f"unknown form {form}")
        q.time = p.time
        out.append(q)
    if form == "be":
        w = PcapWriter(dst, linktype=1 if Ether in packets[0] else 101, endianness=">")
        w.write(out)
        w.close()
    else:
        linktype = {"raw": 101, "ipv4": 228, "sll": 113, "sll2": 276}[form]
        wrpcap(dst, out, linktype=linktype)
    print(len(out))


if __name__ == "__main__":
    main()
