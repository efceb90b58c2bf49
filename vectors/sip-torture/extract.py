#!/usr/bin/env python3
"""Extracts the RFC 4475 torture messages from the RFC text into NAME.dat.

    python3 vectors/sip-torture/extract.py [RFC4475.txt] [OUT_DIR]

Two copies of every message are in the RFC: the rendering in Section 3
(with the markup of Section 2: <allOneLine>, <hex>, <repeat>) and the
"bit-exact" gzip'ed tar archive in Appendix A (base64). This script builds
both and compares them byte for byte. The rendering cannot say what ends a
message (trailing empty lines look the same as page padding), so the rule
applied to it is RFC 3261's: every line ends in CRLF and a message without
a body ends with the empty line. Where the two differ, the file written is
chosen per message in CHOICE below, with the reason, and the differences
are printed (see README.md for the list found).
"""

import base64
import gzip
import io
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Messages whose two copies differ: which copy is written, and why.
CHOICE = {
    # The archive's baddn.dat ends after "l: 0\r\n" without the empty line
    # that ends the header section, so it would be malformed for a reason
    # the RFC does not describe (its text is about unquoted display names).
    # The rendering, read with RFC 3261's rule, has the empty line.
    "baddn": ("text", "archive lacks the empty line ending the header section"),
    # The archive has one more CRLF between the REGISTER and the trailing
    # INVITE-looking octets, and ends with an extra CRLF; both are part of
    # the junk after Content-Length: 0 that RFC 4475 3.1.1.8 says to ignore.
    # The archive is kept: it is what the authors sent.
    "dblreq": ("archive", "extra CRLFs inside the ignored trailing octets"),
    # The empty line between the second body part's headers and its binary
    # content falls on a page break of the rendering, where it cannot be
    # told from page padding; the archive has it, and its Content-Length
    # (553) counts it.
    "mpart01": ("archive", "an empty line lost at a page break of the rendering"),
    # The archive's Via host is "host1.examle.com" (a typo); the rendering
    # is unambiguous here. The test (two SP after SIP/2.0) is in both.
    "trws": ("text", "the archive misspells a Via host name"),
    # The body ends with an empty line, which the rendering cannot show
    # (trailing empty lines look like page padding); the archive has it and
    # its Content-Length (154) counts it.
    "multi01": ("archive", "a final empty line of the body the rendering cannot show"),
    # Likewise (the message is about its two Content-Length values, and
    # neither counts the body exactly either way).
    "mcl01": ("archive", "a final empty line of the body the rendering cannot show"),
}


def archive(text):
    """Appendix A: name -> bytes."""
    lines = []
    inside = False
    for line in text.splitlines():
        if "-- BEGIN MESSAGE ARCHIVE --" in line:
            inside = True
            continue
        if "-- END MESSAGE ARCHIVE --" in line:
            break
        if inside and re.fullmatch(r"\s*\S+\s*", line):
            lines.append(line.strip())
    blob = gzip.decompress(base64.b64decode("".join(lines)))
    out = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for m in tar.getmembers():
            if m.isfile():
                out[Path(m.name).stem] = tar.extractfile(m).read()
    return out


PAGE_BREAK = re.compile(
    r"\n+Sparks, et al\.[^\n]*\[Page \d+\]\n\f\nRFC 4475[^\n]*\n\n*", re.M
)


def decode_markup(s):
    """Section 2.2 and 2.3: <hex>..</hex> and <repeat count=N>..</repeat>."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("<hex>", i):
            j = s.index("</hex>", i)
            out += bytes.fromhex("".join(s[i + 5 : j].split()))
            i = j + 6
        elif s.startswith("<repeat count=", i):
            k = s.index(">", i)
            count = int(s[i + 14 : k])
            depth, j = 1, k + 1
            while depth:
                if s.startswith("<repeat", j):
                    depth += 1
                elif s.startswith("</repeat>", j):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out += decode_markup(s[k + 1 : j]) * count
            i = j + 9
        else:
            out += s[i].encode("utf-8")
            i += 1
    return bytes(out)


def rendering(text):
    """Section 3: name -> (bytes, section number)."""
    text = PAGE_BREAK.sub("\n", text)
    lines = text.split("\n")
    out = {}
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\d+(?:\.\d+)+)\.? ", line)
        if m:
            section = m.group(1)
        m = re.match(r"^ {6}Message Details : (\S+)\s*$", line)
        if not m:
            i += 1
            continue
        name = m.group(1)
        i += 1
        while lines[i].strip() == "":
            i += 1
        body = []
        while i < len(lines) and (lines[i].strip() == "" or lines[i].startswith("      ")):
            body.append(lines[i][6:])
            i += 1
        while body and body[-1].strip() == "":
            body.pop()
        # Logical lines: <allOneLine> blocks and multi-line <hex> blocks
        # are joined without line breaks (Section 2.1).
        logical = []
        k = 0
        while k < len(body):
            if body[k].strip() == "<allOneLine>":
                k += 1
                joined = ""
                while body[k].strip() != "</allOneLine>":
                    joined += body[k]
                    k += 1
                logical.append(joined)
                k += 1
            elif "<hex>" in body[k] and "</hex>" not in body[k].split("<hex>")[-1]:
                joined = body[k]
                k += 1
                while "</hex>" not in body[k]:
                    joined += body[k]
                    k += 1
                joined += body[k]
                logical.append(joined)
                k += 1
            else:
                logical.append(body[k])
                k += 1
        msg = b"".join(decode_markup(l) + b"\r\n" for l in logical)
        if "" not in logical:
            msg += b"\r\n"  # no body: the empty line ends the message
        out[name] = (msg, section)
    return out


def main():
    rfc = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "../../../shared/refs/rfc/rfc4475.txt"
    dest = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE
    text = rfc.read_text(encoding="ascii")
    arch = archive(text)
    rend = rendering(text)
    for name in sorted(set(arch) - set(rend)):
        print(f"{name}: only in the archive ({len(arch[name])} bytes), not written")
    same = 0
    for name, (msg, section) in sorted(rend.items(), key=lambda kv: [int(x) for x in kv[1][1].split(".")]):
        a = arch.get(name)
        if a == msg:
            same += 1
            chosen = msg
        else:
            n = next((i for i in range(min(len(a), len(msg))) if a[i] != msg[i]), min(len(a), len(msg)))
            print(f"{name} ({section}): text {len(msg)} B, archive {len(a)} B, first difference at byte {n}:")
            print(f"    text    {msg[max(0, n - 20):n + 20]!r}")
            print(f"    archive {a[max(0, n - 20):n + 20]!r}")
            if name not in CHOICE:
                sys.exit(f"{name}: the copies differ and CHOICE says nothing about it")
            which, why = CHOICE[name]
            print(f"    written: the {which} ({why})")
            chosen = msg if which == "text" else a
        (dest / f"{name}.dat").write_bytes(chosen)
    print(f"{len(rend)} messages written to {dest}; {same} identical in both copies")


if __name__ == "__main__":
    main()
