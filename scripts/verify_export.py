#!/usr/bin/env python3
"""Verify a clawgate audit export (`clawgate audit export --format jsonl`) without clawgate.

Usage: python3 verify_export.py [EXPORT.jsonl]    (reads standard input without a file)

Checks that every entry's hash is SHA-256(0x00 || RFC 8785 JSON of the entry), that seq
runs 0, 1, 2, ... with no gap, every prev link, and that each checkpoint's tree size and
root equal the RFC 6962 Merkle root of the first `size` entries. Checkpoint lines may also
come before the entries they cover (`cat checkpoints.jsonl export.jsonl | ...`).
The standard library has no ed25519, so checkpoint SIGNATURES ARE NOT CHECKED here:
`clawgate audit verify --pubkey KEY` checks them. Python 3.11+, standard library only.
"""
import base64, hashlib, json, sys

ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
           "\t": "\\t"}


class Bad(Exception):
    """The first problem found: the seq it concerns and what is wrong."""


def jcs_string(s):
    return '"' + "".join(ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in s) + '"'


def jcs(v):
    """RFC 8785 canonical JSON of the values an entry can hold (entries hold no floats)."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int):
        if abs(v) > 2**53:
            raise ValueError(f"integer {v} beyond 2^53 (clawgate stores those as strings)")
        return str(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(map(jcs, v)) + "]"
    if isinstance(v, dict):  # members sorted by the UTF-16 code units of their names
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise ValueError(f"unexpected {type(v).__name__}")


def not_integer(text):
    raise ValueError(f"number {text} is not an integer")


def node(left, right):  # RFC 6962 interior node hash
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(frontier):  # roots of the perfect subtrees, largest (leftmost) first
    root = frontier[-1] if frontier else hashlib.sha256(b"").digest()
    for h in reversed(frontier[:-1]):
        root = node(h, root)
    return root


def parse_checkpoint(line):
    # The note: origin, tree size and base64 root lines, a blank line, then signature lines.
    _origin, size, root = line["checkpoint"].split("\n\n")[0].split("\n")
    root = base64.b64decode(root, validate=True)
    if not (size.isascii() and size.isdigit()) or str(int(size)) != size or len(root) != 32:
        raise ValueError("malformed checkpoint note")
    if line.get("size", int(size)) != int(size):
        raise ValueError(f"checkpoint line says size {line['size']}, its note says {size}")
    return int(size), root


def verify(lines):
    """Returns (entries, root, checkpoints matched); raises Bad on the first problem."""
    count, prev, frontier, waiting, matched = 0, "0" * 64, [], {}, 0
    for line_no, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text, parse_float=not_integer, parse_constant=not_integer)
            if "checkpoint" in line:
                size, root = parse_checkpoint(line)
            elif isinstance(entry := line["entry"], dict):
                digest = hashlib.sha256(b"\x00" + jcs(entry).encode("utf-8")).digest()
            else:
                raise ValueError("entry is not an object")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise Bad(count, f"line {line_no} is not a valid export line: {e}")
        if "checkpoint" in line:
            if size < count:
                raise Bad(count, f"the checkpoint for size {size} comes after that size")
            waiting[size] = root
        else:
            seq = entry.get("seq")
            if type(seq) is not int or seq != count:
                raise Bad(count, f"found seq {seq} here: entries were deleted, moved or swapped")
            if digest.hex() != line.get("hash"):
                raise Bad(count, "the entry does not match its recorded hash: it was altered")
            if entry.get("prev") != prev:
                raise Bad(count, f"prev is not the hash of seq {count - 1}: the chain is broken")
            carry, h = count, digest  # add the leaf: merge equal-sized subtrees
            while carry & 1:
                h, carry = node(frontier.pop(), h), carry >> 1
            frontier.append(h)
            count, prev = count + 1, digest.hex()
        if count in waiting:
            if waiting.pop(count) != merkle_root(frontier):
                raise Bad(count - 1, f"the Merkle root of the first {count} entries differs "
                          "from the checkpoint's")
            matched += 1
    if waiting:
        raise Bad(count, f"the export ends after {count} entries but a checkpoint covers "
                  f"{min(waiting)}: the tail was cut")
    return count, merkle_root(frontier).hex(), matched


if __name__ == "__main__":
    try:
        with open(sys.argv[1], "rb") if len(sys.argv) > 1 else sys.stdin.buffer as source:
            entries, root, matched = verify(source)
    except Bad as e:
        sys.exit(f"FAILED at seq {e.args[0]}: {e.args[1]}")
    print(f"ok: {entries} entries, root {root}, {matched} checkpoints matched")
    print("signatures not checked: use `clawgate audit verify --pubkey KEY`", file=sys.stderr)
