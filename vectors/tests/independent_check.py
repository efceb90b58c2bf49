#!/usr/bin/env python3
"""Recompute every expected value in vectors/data/*.txt with code nobody in
this project wrote: Python hashlib/hmac/base64, the `cryptography` package
(AES, CMAC, TripleDES) and the `openssl enc` CLI (DES, 3DES, AES-CBC/ECB);
MILENAGE, AKA (AUTS) and the IMS key expansion are written below from their
specifications over those.

This is a second, independent reader of the vector format too (see
data/README.md). Usage: independent_check.py [DATA_DIR]. Exit 0 if every
value matched, 1 on any mismatch, 2 if a tool is missing.
"""
import base64, hashlib, hmac, os, re, subprocess, sys

try:
    from cryptography.hazmat.primitives import cmac as _cmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    print("independent_check: python package `cryptography` missing", file=sys.stderr)
    sys.exit(2)


def parse_value(text, line):
    out = b""
    i = 0
    n = len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if text.startswith("0x", i):
            j = i + 2
            while j < n and (text[j] in "0123456789abcdefABCDEF \t"):
                j += 1
            atom = bytes.fromhex(text[i + 2:j].replace(" ", "").replace("\t", ""))
            i = j
        elif i < n and text[i] == '"':
            j = i + 1
            buf = bytearray()
            while text[j] != '"':
                c = text[j]
                if c == "\\":
                    e = text[j + 1]
                    if e == "x":
                        buf.append(int(text[j + 2:j + 4], 16)); j += 4; continue
                    buf += {"\\": b"\\", '"': b'"', "n": b"\n", "r": b"\r", "t": b"\t"}[e]
                    j += 2
                    continue
                buf += c.encode(); j += 1
            atom = bytes(buf)
            i = j + 1
        else:
            raise ValueError("line %d: bad value %r" % (line, text))
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "*":
            m = re.match(r"\*\s*(\d+)", text[i:])
            atom = atom * int(m.group(1))
            i += m.end()
            while i < n and text[i] in " \t":
                i += 1
        out += atom
        if i >= n:
            return out
        if text[i] != "+":
            raise ValueError("line %d: junk %r" % (line, text[i:]))
        i += 1


def load(path):
    header, cases, cur = {}, [], None
    logical = []
    for no, raw in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if raw[0] in " \t" and logical:
            logical[-1][1] += " " + s
            continue
        logical.append([no, s])
    for no, s in logical:
        if s.startswith("["):
            cur = {"name": s[1:s.rindex("]")]}
            cases.append(cur)
            continue
        k, v = s.split("=", 1)
        k = k.strip()
        target = header if cur is None else cur
        target[k] = v.strip() if cur is None else parse_value(v.strip(), no)
    return header, cases


def openssl_enc(cipher, key, iv, data, decrypt=False):
    cmd = ["openssl", "enc", "-" + cipher, "-nopad", "-K", key.hex()]
    if cipher.startswith("des-") and not cipher.startswith("des-ede3"):
        cmd[2:2] = ["-provider", "legacy", "-provider", "default"]
    if iv is not None:
        cmd += ["-iv", iv.hex()]
    if decrypt:
        cmd.append("-d")
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


def aes_ecb(key, block):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def xcbc(key, m):
    # RFC 3566 §4, written here from the RFC text over `cryptography` AES.
    k1 = aes_ecb(key, b"\x01" * 16)
    k2 = aes_ecb(key, b"\x02" * 16)
    k3 = aes_ecb(key, b"\x03" * 16)
    blocks = [m[i:i + 16] for i in range(0, len(m), 16)] or [b""]
    e = bytes(16)
    for b in blocks[:-1]:
        e = aes_ecb(k1, bytes(x ^ y for x, y in zip(e, b)))
    last = blocks[-1]
    if len(last) == 16:
        last = bytes(x ^ y for x, y in zip(last, k2))
    else:
        last = last + b"\x80" + bytes(15 - len(last))
        last = bytes(x ^ y for x, y in zip(last, k3))
    return aes_ecb(k1, bytes(x ^ y for x, y in zip(e, last)))


def aes_cmac(key, m):
    c = _cmac.CMAC(algorithms.AES(key))
    c.update(m)
    return c.finalize()


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def rot(x, r):
    r //= 8
    return x[r:] + x[:r]


def milenage(k, opc, rand, sqn=None, amf=None):
    # TS 35.206 §4.1 with the default r1..r5 = 64,0,32,64,96 and c1..c5.
    temp = aes_ecb(k, xor(rand, opc))
    c = [bytes(16), bytes(15) + b"\x01", bytes(15) + b"\x02", bytes(15) + b"\x04", bytes(15) + b"\x08"]
    r = [64, 0, 32, 64, 96]
    res = {}
    if sqn is not None:
        in1 = sqn + amf + sqn + amf
        out1 = xor(aes_ecb(k, xor(temp, rot(xor(in1, opc), r[0]))), opc)
        res["f1"], res["f1_star"] = out1[:8], out1[8:]
    outs = [xor(aes_ecb(k, xor(rot(xor(temp, opc), r[i]), c[i])), opc) for i in range(1, 5)]
    res["f2"], res["f5"] = outs[0][8:16], outs[0][:6]
    res["f3"], res["f4"], res["f5_star"] = outs[1], outs[2], outs[3][:6]
    return res


def check_case(alg, c):
    """Return a list of (field, expected, got) mismatches."""
    bad = []

    def cmp(field, got):
        if field in c and c[field] != got:
            bad.append((field, c[field].hex(), got.hex()))

    if alg in ("md5", "sha1", "sha256"):
        cmp("digest", hashlib.new(alg, c["data"]).digest())
    elif alg.startswith("hmac-"):
        full = hmac.new(c["key"], c["data"], alg[5:]).digest()
        cmp("digest", full)
        if "truncated" in c:
            cmp("truncated", full[:len(c["truncated"])])
    elif alg in ("aes-xcbc-mac", "aes-cmac"):
        full = (xcbc if alg == "aes-xcbc-mac" else aes_cmac)(c["key"], c["data"])
        cmp("mac", full)
        if "truncated" in c:
            cmp("truncated", full[:len(c["truncated"])])
    elif alg.endswith("-cbc") or alg.endswith("-ecb"):
        name = {"aes-cbc": "aes-%d-cbc" % (8 * len(c["key"])),
                "aes-ecb": "aes-%d-ecb" % (8 * len(c["key"])), "des-cbc": "des-cbc",
                "3des-cbc": "des-ede3-cbc", "des-ecb": "des-ecb", "3des-ecb": "des-ede3"}[alg]
        iv = c.get("iv")
        cmp("ciphertext", openssl_enc(name, c["key"], iv, c["plaintext"]))
        back = openssl_enc(name, c["key"], iv, c["ciphertext"], decrypt=True)
        if back != c["plaintext"]:
            bad.append(("plaintext (openssl -d)", c["plaintext"].hex(), back.hex()))
        if alg in ("aes-cbc", "aes-ecb"):
            mode = modes.CBC(iv) if alg == "aes-cbc" else modes.ECB()
            e = Cipher(algorithms.AES(c["key"]), mode).encryptor()
            cmp("ciphertext", e.update(c["plaintext"]) + e.finalize())
        if "payload" in c:
            cmp("plaintext", c["payload"] + c["padding"] + c["pad_length"] + c["next_header"])
    elif alg == "null":
        # RFC 2410 §2: NULL(b) = b.
        cmp("null_data", c["data"])
    elif alg == "milenage":
        if "op" in c:
            cmp("opc", xor(aes_ecb(c["k"], c["op"]), c["op"]))
        for f, v in milenage(c["k"], c["opc"], c["rand"], c["sqn"], c["amf"]).items():
            cmp(f, v)
    elif alg == "gsm-milenage":
        m = milenage(c["ki"], c["opc"], c["rand"])
        res, ck, ik = m["f2"], m["f3"], m["f4"]
        cmp("sres1", xor(res[:4], res[4:8]))
        cmp("sres2", res[:4])
        cmp("kc", xor(xor(ck[:8], ck[8:]), xor(ik[:8], ik[8:])))
    elif alg == "aka":
        # TS 33.102 §6.3: the network side from OP, AUTS for SQN_MS with
        # AMF 0000 (§6.3.3), the AKAv2 password of RFC 4169 §2.1.
        opc = xor(aes_ecb(c["k"], c["op"]), c["op"]) if "op" in c else c["opc"]
        cmp("opc", opc)
        for f, v in milenage(c["k"], opc, c["rand"], c["sqn"], c["amf"]).items():
            cmp(f, v)
        stale = c["sqn_ms_stale"]
        if int.from_bytes(stale, "big") <= int.from_bytes(c["sqn"], "big"):
            bad.append(("sqn_ms_stale", "above sqn", stale.hex()))
        m = milenage(c["k"], opc, c["rand"], stale, b"\0\0")
        cmp("auts", xor(stale, m["f5_star"]) + m["f1_star"])
        key = c["f2"] + c["f4"] + c["f3"]
        pw = base64.b64encode(hmac.new(key, b"http-digest-akav2-password", "md5").digest())
        cmp("akav2_password", pw)
    elif alg == "ims-esp-keys":
        # The formula of shared/refs/3gpp-notes.md (TS 33.203 Annex I).
        enc = {b"des-ede3-cbc": c["ck"] + c["ck"][:8], b"aes-cbc": c["ck"], b"null": b""}
        auth = {b"hmac-md5-96": c["ik"], b"hmac-sha-1-96": c["ik"] + bytes(4)}
        ealg, aalg = c["ealg"].lower(), c["alg"].lower()
        if ealg in enc and aalg in auth:
            if "error" in c:
                bad.append(("error", c["error"].decode(), "keys derived"))
            cmp("enc_key", enc[ealg])
            cmp("auth_key", auth[aalg])
        else:
            cmp("error", b"unknown-algorithm")
    elif alg == "http-digest":
        h = lambda s: hashlib.md5(s).hexdigest().encode()
        ha1 = h(c["username"] + b":" + c["realm"] + b":" + c["password"])
        ha2 = h(c["method"] + b":" + c["uri"])
        resp = h(b":".join([ha1, c["nonce"], c["nc"], c["cnonce"], c["qop"], ha2]))
        cmp("response", resp)
    else:
        bad.append(("algorithm", "known", alg))
    return bad


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data")
    failures = total = 0
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".txt"):
            continue
        header, cases = load(os.path.join(d, fn))
        for c in cases:
            total += 1
            for field, exp, got in check_case(header["algorithm"], c):
                failures += 1
                print("MISMATCH %s [%s] %s: expected %s got %s" % (fn, c["name"], field, exp, got))
        print("%-40s %-14s %3d cases checked" % (fn, header["algorithm"], len(cases)))
    print("%d cases, %d mismatches" % (total, failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
