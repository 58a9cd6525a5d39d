"""Java's URLDecoder and Base64 decoder as Elasticsearch's URL_DECODE and FROM_BASE64 run them: the same results and the same exception messages, shared by every executor."""

from __future__ import annotations

from reconwatch.plan.values import ConversionError

ILLEGAL_ARGUMENT = "java.lang.IllegalArgumentException"
_HEX_ESCAPE = "URLDecoder: Illegal hex characters in escape (%) pattern - "
# Base64's alphabet (RFC 4648 table 1) and its padding character.
_ALPHABET = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}
_PAD = ord("=")


def _failure(message: str) -> ConversionError:
    return ConversionError(message, ILLEGAL_ARGUMENT)


# ---------------------------------------------------------------------------------------------
# URLDecoder.decode(text, UTF_8)


def url_decode(text: str) -> str:
    """`+` is a space; each run of `%XY` escapes is decoded as UTF-8 bytes (malformed bytes are
    U+FFFD); a bad escape raises ConversionError with Java's message."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "+":
            out.append(" ")
            i += 1
        elif c == "%":
            raw = bytearray()
            while i + 2 < n and text[i] == "%":
                raw.append(_escape_value(text[i + 1 : i + 3]))
                i += 3
            if i < n and text[i] == "%":
                msg = "URLDecoder: Incomplete trailing escape (%) pattern"
                raise _failure(msg)
            out.append(raw.decode("utf-8", errors="replace"))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _escape_value(pair: str) -> int:
    """Integer.parseInt(pair, 16) over the two characters after `%`, as a byte; Java's messages."""
    index, sign = 0, 1
    if pair[0] in "+-":
        sign, index = (-1 if pair[0] == "-" else 1), 1
    value = 0
    for at in range(index, len(pair)):
        digit = _hex_digit(pair[at])
        if digit < 0:
            raise _failure(f'{_HEX_ESCAPE}Error at index {at} in: "{pair}"')
        value = value * 16 + digit
    value *= sign
    if value < 0:
        raise _failure(f"{_HEX_ESCAPE}negative value")
    return value


def _hex_digit(ch: str) -> int:
    """Character.digit(ch, 16) for ASCII and Unicode decimal digits."""
    if ch.isascii():
        return int(ch, 16) if ch in "0123456789abcdefABCDEF" else -1
    return int(ch) if ch.isdecimal() else -1


# ---------------------------------------------------------------------------------------------
# Base64.getDecoder().decode(bytes)


def base64_decode(text: str) -> str:
    """The RFC 4648 basic decoder (no line breaks, padding optional but exact) over the text's
    UTF-8 bytes, decoded again as UTF-8 (malformed bytes are U+FFFD); Java's messages."""
    src = text.encode()
    if not src:
        return ""
    if len(src) < 2:
        raise _failure("Input byte[] should at least have 2 bytes for base64 bytes")
    out = bytearray()
    bits, shift, at = 0, 18, 0
    while at < len(src):
        byte = src[at]
        at += 1
        value = _ALPHABET.get(byte, -1)
        if value < 0:
            if byte == _PAD:
                # After two characters a second `=` must follow; at a unit's start none may.
                second = at < len(src) and src[at] == _PAD
                if shift == 18 or (shift == 6 and not second):
                    raise _failure("Input byte array has wrong 4-byte ending unit")
                at += 1 if shift == 6 else 0
                break
            raise _failure(f"Illegal base64 character {_java_byte_hex(byte)}")
        bits |= value << shift
        shift -= 6
        if shift < 0:
            out += bytes(((bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF))
            bits, shift = 0, 18
    if shift == 6:
        out.append((bits >> 16) & 0xFF)
    elif shift == 0:
        out += bytes(((bits >> 16) & 0xFF, (bits >> 8) & 0xFF))
    elif shift == 12:
        raise _failure("Last unit does not have enough valid bits")
    if at < len(src):
        raise _failure(f"Input byte array has incorrect ending byte at {at}")
    return out.decode("utf-8", errors="replace")


def _java_byte_hex(byte: int) -> str:
    """Integer.toString(b, 16) of a signed Java byte: 0xC3 is -3d."""
    return format(byte - 256 if byte > 127 else byte, "x")
