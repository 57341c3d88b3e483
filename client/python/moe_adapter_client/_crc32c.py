"""CRC32C (Castagnoli, as in iSCSI / RFC 3720): the checksum of every tensor on the wire.

Uses Debian's python3-crc32c (hardware-accelerated) when it is installed. Without it, a NumPy
fallback runs the byte-wise table over many lanes of the data at once and joins the lanes'
CRCs with the "append N zero bytes" operator, so gigabytes take seconds, not hours.
"""
import numpy as np

try:
    import crc32c as _native
except ImportError:  # pragma: no cover - exercised through crc32c_fallback in the tests
    _native = None

_POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _make_table():
    t = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        t[i] = c
    return t


_TABLE = _make_table()
_TABLE_LIST = [int(x) for x in _TABLE]
_LANES = 4096


def _apply(matrix, v):
    """matrix (32 column ints) times the GF(2) vector v."""
    r = 0
    i = 0
    while v:
        if v & 1:
            r ^= matrix[i]
        v >>= 1
        i += 1
    return r


def _square(matrix):
    return [_apply(matrix, c) for c in matrix]


def _zeros_operator(n):
    """The linear map of the raw CRC register over n zero bytes, as 32 columns."""
    one_byte = [(_TABLE_LIST[(1 << i) & 0xFF] ^ ((1 << i) >> 8)) for i in range(32)]
    result = [1 << i for i in range(32)]
    power = one_byte
    while n:
        if n & 1:
            result = [_apply(power, c) for c in result]
        n >>= 1
        if n:
            power = _square(power)
    return result


def _raw_bytes(state, data):
    t = _TABLE_LIST
    for b in data:
        state = t[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def crc32c_fallback(data, crc=0):
    """CRC32C of `data` (bytes-like), continuing from `crc`, without the native module."""
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    state = crc ^ 0xFFFFFFFF
    lane_len = buf.size // _LANES
    if lane_len >= 64:
        lanes = buf[: lane_len * _LANES].reshape(_LANES, lane_len)
        regs = np.zeros(_LANES, dtype=np.uint32)
        for j in range(lane_len):
            regs = _TABLE[(regs ^ lanes[:, j]) & 0xFF] ^ (regs >> 8)
        # The register is linear: state after lane k = shift(state before) ^ raw CRC of lane k.
        shift = _zeros_operator(lane_len)
        for r in regs.tolist():
            state = _apply(shift, state) ^ r
        buf = buf[lane_len * _LANES:]
    state = _raw_bytes(state, buf.tolist())
    return state ^ 0xFFFFFFFF


def crc32c(data, crc=0):
    """CRC32C of `data` (bytes-like), continuing from `crc` (the CRC of what came before)."""
    if _native is not None:
        return _native.crc32c(data, crc)
    return crc32c_fallback(data, crc)
