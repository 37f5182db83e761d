"""The few ABI pieces the classifier and the pending-swap decoder read, decoded by hand from hex.

Only static words and `address[]`/`bytes` heads are needed, and a block has thousands of frames:
slicing the hex string and int(..., 16) is several times faster than a general ABI decoder, and
every selector and topic is derived from its signature here, so none is typed in by hand.
"""

from __future__ import annotations

from eth_utils import keccak

_WORD = 64  # hex characters per 32-byte word
_INT256_SIGN = 1 << 255
_UINT256 = 1 << 256
ETH = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # the native coin where a token address is expected


def topic(signature: str) -> str:
    """topic0 of an event, 0x-prefixed lower-case hex."""
    return "0x" + keccak(text=signature).hex()


def selector(signature: str) -> str:
    """The 4-byte function selector as 0x + 8 hex characters."""
    return "0x" + keccak(text=signature)[:4].hex()


def quantity(value: object, field: str) -> int:
    """A JSON-RPC quantity: 0x-hex (as nodes serve them) or a plain integer (anvil's trace blockNumber)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
        except ValueError:
            pass
    raise ValueError(f"{field}: not a quantity: {value!r}")


def words(data: str) -> str:
    """The hex payload without 0x (log data, or call data after the selector)."""
    return data[2:] if data.startswith("0x") else data


def word(payload: str, index: int) -> int:
    """The index-th 32-byte word of a payload as an unsigned int (0 past the end, as the EVM reads)."""
    chunk = payload[index * _WORD : (index + 1) * _WORD]
    return int(chunk, 16) if chunk else 0


def signed_word(payload: str, index: int) -> int:
    value = word(payload, index)
    return value - _UINT256 if value & _INT256_SIGN else value


def address_word(payload: str, index: int) -> str:
    return "0x" + payload[index * _WORD + 24 : (index + 1) * _WORD]


def topic_address(topic_hex: str) -> str:
    return "0x" + topic_hex[-40:].lower()


def topic_int(topic_hex: str) -> int:
    value = int(topic_hex, 16)
    return value - _UINT256 if value & _INT256_SIGN else value


def address_array(payload: str, head_index: int) -> list[str]:
    """An `address[]` argument whose offset is in word `head_index`."""
    start = word(payload, head_index) // 32
    length = word(payload, start)
    return [address_word(payload, start + 1 + i) for i in range(length)]


def dynamic_bytes(payload: str, head_index: int, base: int = 0) -> str:
    """A `bytes` argument (hex, no 0x) whose offset, relative to word `base`, is in word `base + head_index`."""
    start = base + word(payload, base + head_index) // 32
    length = word(payload, start)
    offset = (start + 1) * _WORD
    return payload[offset : offset + 2 * length]
