"""Recorded diagnostic traffic for tests: UDS payloads as the ISO-TP frames a bus carries.

Segmentation is plain ISO 15765-2 on classic CAN (0xCC padding, a flow control from the
receiver after a first frame); tests/test_diag_isotp.py proves the reassembly of such frames
against can-isotp itself, so here only the UDS side is under test.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.diag.catalog import Ecu

PAD = 0xCC


def segment(payload: bytes) -> list[bytes]:
    """The CAN payloads of one ISO-TP message (classic CAN, 8 bytes, padded)."""
    if len(payload) <= 7:
        return [bytes([len(payload)]) + payload + bytes([PAD] * (7 - len(payload)))]
    n = len(payload)
    frames = [bytes([0x10 | (n >> 8), n & 0xFF]) + payload[:6]]
    rest, seq = payload[6:], 1
    for start in range(0, len(rest), 7):
        chunk = rest[start : start + 7]
        frames.append(bytes([0x20 | seq]) + chunk + bytes([PAD] * (7 - len(chunk))))
        seq = (seq + 1) & 0xF
    return frames


FLOW_CONTROL = bytes([0x30, 0x00, 0x00]) + bytes([PAD] * 5)


def message_rows(t: float, can_id: int, payload: bytes, *, ext: bool = False,
                 reply_id: int | None = None, gap: float = 0.001) -> list[tuple]:  # fmt: skip
    """``(t, id, data, ext)`` rows of one message; a flow control on ``reply_id`` after a first
    frame, as the receiver sends it."""
    rows: list[tuple] = []
    for index, data in enumerate(segment(payload)):
        rows.append((t, can_id, data, ext))
        t += gap
        if index == 0 and len(payload) > 7 and reply_id is not None:
            rows.append((t, reply_id, FLOW_CONTROL, ext))
            t += gap
    return rows


def exchange_rows(ecu: Ecu, t: float, request: bytes, response: bytes | None,
                  latency: float = 0.01) -> list[tuple]:  # fmt: skip
    """The frames of a request to ``ecu`` at ``t`` and its response ``latency`` later."""
    ext = ecu.is_extended_id
    rows = message_rows(t, ecu.request_id, request, ext=ext, reply_id=ecu.response_id)
    if response is not None:
        start = rows[-1][0] + latency
        rows += message_rows(start, ecu.response_id, response, ext=ext, reply_id=ecu.request_id)
    return rows


def read_dtc_request(mask: int = 0xFF) -> bytes:
    return bytes([0x19, 0x02, mask])


def read_dtc_response(dtcs: Iterable[tuple[int, int]], availability: int = 0xFF) -> bytes:
    """Positive reportDTCByStatusMask response: ``(code, status)`` pairs."""
    body = b"".join(code.to_bytes(3, "big") + bytes([status]) for code, status in dtcs)
    return bytes([0x59, 0x02, availability]) + body


def count_request(mask: int) -> bytes:
    return bytes([0x19, 0x01, mask])


def count_response(mask: int, count: int) -> bytes:
    return bytes([0x59, 0x01, mask, 0x00]) + count.to_bytes(2, "big")


def did_request(*ids: int) -> bytes:
    return bytes([0x22]) + b"".join(i.to_bytes(2, "big") for i in ids)


def did_response(*records: tuple[int, bytes]) -> bytes:
    return bytes([0x62]) + b"".join(i.to_bytes(2, "big") + data for i, data in records)


CLEAR_REQUEST = bytes([0x14, 0xFF, 0xFF, 0xFF])
CLEAR_RESPONSE = bytes([0x54])


def negative(sid: int, nrc: int) -> bytes:
    return bytes([0x7F, sid, nrc])
