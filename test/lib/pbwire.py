# SPDX-License-Identifier: GPL-2.0-or-later
"""Just enough of the protobuf wire format to forge hostile ICI images.

An image is "TCPI", a big-endian u32 payload length, then a protobuf
tcpcp_ici.  edit() rewrites one field, found by a path of field numbers
(see images/ici.proto), and re-frames the image: the result is a
well-formed image whose content is wrong, which is what validation must
catch.
"""
import struct

MAGIC = b'TCPI'
VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        v |= (b & 0x7f) << shift
        i += 1
        if not b & 0x80:
            return v, i
        shift += 7


def _put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def decode(buf):
    """[[field, wiretype, value]]: ints for varints, bytes otherwise."""
    fields, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == VARINT:
            val, i = _varint(buf, i)
        elif wt == LEN:
            n, i = _varint(buf, i)
            val, i = bytes(buf[i:i + n]), i + n
        elif wt == FIXED64:
            val, i = bytes(buf[i:i + 8]), i + 8
        elif wt == FIXED32:
            val, i = bytes(buf[i:i + 4]), i + 4
        else:
            raise ValueError(f'wire type {wt}')
        fields.append([num, wt, val])
    return fields


def encode(fields):
    out = bytearray()
    for num, wt, val in fields:
        out += _put_varint(num << 3 | wt)
        if wt == VARINT:
            out += _put_varint(val)
        elif wt == LEN:
            out += _put_varint(len(val)) + val
        else:
            out += val
    return bytes(out)


def unframe(img):
    assert img[:4] == MAGIC, 'not an ICI image'
    return img[8:]


def frame(payload):
    return MAGIC + struct.pack('>I', len(payload)) + payload


def _edit(payload, path, value):
    fields = decode(payload)
    hit = [f for f in fields if f[0] == path[0]]
    assert hit, f'field {path[0]} not in the message'
    f = hit[0]
    if len(path) > 1:
        f[2] = _edit(f[2], path[1:], value)
    elif callable(value):
        f[2] = value(f[2])
    else:
        f[2] = value
    return encode(fields)


def edit(img, path, value):
    """path: field numbers from tcpcp_ici down; value: the new value, or a
    function of the old one."""
    return frame(_edit(unframe(img), path, value))


def get(img, path):
    payload = unframe(img)
    for num in path:
        f = [f for f in decode(payload) if f[0] == num][0]
        payload = f[2]
    return payload
