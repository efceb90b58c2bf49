# Small network applications for the ipsecd namespace tests (stdlib only).
# Each mode prints one line per event so the Rust test can check it; the
# background modes (udpecho, tcpecho, udpstream) first print READY once
# their socket is bound (and listening), which the test waits for.
import socket
import struct
import sys
import time

mode = sys.argv[1]
a = sys.argv[2:]


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def accept_one(host, port, seconds):
    """Listens on host:port, prints READY, and returns the first connection
    (socket.timeout after `seconds` without one)."""
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(4)
    print("READY", flush=True)
    s.settimeout(float(seconds))
    c, _ = s.accept()
    c.settimeout(float(seconds))
    return c


if mode == "udpecho":  # host port seconds
    s = socket.socket(fam(a[0]), socket.SOCK_DGRAM)
    s.bind((a[0], int(a[1])))
    print("READY", flush=True)
    end = time.time() + float(a[2])
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d, peer = s.recvfrom(65535)
        except socket.timeout:
            break
        print("RX", d.hex(), flush=True)
        s.sendto(d, peer)
elif mode == "tcpecho":  # host port seconds
    try:
        c = accept_one(a[0], a[1], a[2])
        while True:
            d = c.recv(65535)
            if not d:
                break
            print("RX", d.hex(), flush=True)
            c.sendall(d)
    except socket.timeout:
        pass
elif mode == "tcpsink":  # host port seconds: answers each stream with its SHA-256
    import hashlib
    try:
        c = accept_one(a[0], a[1], a[2])
        h = hashlib.sha256()
        n = 0
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            h.update(d)
            n += len(d)
        print("GOT", n, h.hexdigest(), flush=True)
        c.sendall(h.digest())
        c.close()
    except socket.timeout:
        print("TIMEOUT", flush=True)
elif mode == "tcpbulk":  # lhost lport rhost rport megabytes: a stream, checked by its SHA-256
    import hashlib, random
    s = socket.socket(fam(a[0]), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a[0], int(a[1])))
    s.settimeout(20.0)
    s.connect((a[2], int(a[3])))
    block = random.Random(7).randbytes(1 << 20)
    h = hashlib.sha256()
    for i in range(int(a[4])):
        m = block[i:] + block[:i]
        s.sendall(m)
        h.update(m)
    s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while len(got) < 32:
            d = s.recv(64)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    print("OK" if got == h.digest() else "BAD", int(a[4]) << 20, flush=True)
elif mode == "udpcli":  # lhost lport rhost rport count size
    s = socket.socket(fam(a[0]), socket.SOCK_DGRAM)
    s.bind((a[0], int(a[1])))
    s.settimeout(1.0)
    for i in range(int(a[4])):
        m = (b"udp-%d-" % i).ljust(int(a[5]), b"u")
        s.sendto(m, (a[2], int(a[3])))
        try:
            d, _ = s.recvfrom(65535)
            print("OK" if d == m else "BAD", m.hex(), flush=True)
        except socket.timeout:
            print("LOST", m.hex(), flush=True)
elif mode == "tcpcli":  # lhost lport rhost rport count size
    s = socket.socket(fam(a[0]), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a[0], int(a[1])))
    s.settimeout(3.0)
    s.connect((a[2], int(a[3])))
    for i in range(int(a[4])):
        m = (b"tcp-%d-" % i).ljust(int(a[5]), b"t")
        s.sendall(m)
        got = b""
        try:
            while len(got) < len(m):
                d = s.recv(65535)
                if not d:
                    break
                got += d
            print("OK" if got == m else "BAD", m.hex(), flush=True)
        except socket.timeout:
            print("LOST", m.hex(), flush=True)
    s.close()
elif mode == "udpstream":  # lhost lport rhost rport seconds interval
    s = socket.socket(fam(a[0]), socket.SOCK_DGRAM)
    s.bind((a[0], int(a[1])))
    print("READY", flush=True)
    end = time.time() + float(a[4])
    i = 0
    while time.time() < end:
        try:
            s.sendto(b"stream-%d" % i, (a[2], int(a[3])))
            print("SENT", i, flush=True)
        except OSError as e:
            print("ERR", i, e.errno, flush=True)
        i += 1
        time.sleep(float(a[5]))
elif mode == "udpsend":  # lhost lport rhost rport text: one datagram, no answer
    s = socket.socket(fam(a[0]), socket.SOCK_DGRAM)
    s.bind((a[0], int(a[1])))
    s.sendto(a[4].encode(), (a[2], int(a[3])))
    print("SENT", flush=True)
elif mode == "rawesp":  # dst hexpayload: an ESP packet (after the IP header)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    s.sendto(bytes.fromhex(a[1]), (a[0], 0))
    print("SENT", flush=True)
elif mode == "spoofudp":  # mark src sport dst dport payload: cleartext, past the TUN
    src, sport, dst, dport = a[1], int(a[2]), a[3], int(a[4])
    data = a[5].encode()
    udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, 36, int(a[0]))  # SO_MARK: skip the TUN rule
    s.sendto(ip + udp, (dst, 0))
    print("SENT", flush=True)
elif mode == "spoofstream":  # mark src sport dst dport seconds interval: cleartext past the TUN, repeatedly
    src, sport, dst, dport = a[1], int(a[2]), a[3], int(a[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, 36, int(a[0]))  # SO_MARK: skip the TUN rule
    print("READY", flush=True)
    end = time.time() + float(a[5])
    i = 0
    while time.time() < end:
        data = b"INJECT-%d" % i
        udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        s.sendto(ip + udp, (dst, 0))
        print("SENT", i, flush=True)
        i += 1
        time.sleep(float(a[6]))
elif mode == "scapy_ah":  # pcap spi hexkey: verify the AH ICV of every packet with that SPI
    from scapy.all import rdpcap, IP, Ether
    from scapy.layers.ipsec import SecurityAssociation, AH
    spi = int(a[1], 0)
    sa = SecurityAssociation(AH, spi=spi, auth_algo="HMAC-SHA1-96", auth_key=bytes.fromhex(a[2]))
    good = bad = 0
    for p in rdpcap(a[0]):
        if AH in p and p[AH].spi == spi:
            ip = IP(bytes(p[IP]))
            try:
                sa.decrypt(ip)
                good += 1
            except Exception as e:
                bad += 1
    print("GOOD", good, "BAD", bad, flush=True)
