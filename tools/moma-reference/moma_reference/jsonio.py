r"""Strict JSON reading with JSON-path error reporting.

The model definition and the token file are read with the same rules
(examples/README.md, "JSON text"), which are those of the C++ reader:

* the text is read with the grammar of ``llvm::json::parse`` (LLVM 22), which
  the compiler uses; :func:`parse_json_text` is a port of that parser, so
  that both readers accept the same texts and report the same first error at
  the same place (``invalid JSON at line L column C: WHAT``, columns counting
  bytes from 1).  Compared with RFC 8259 it also accepts numbers such as
  ``01``, ``1.``, ``.5`` and ``+1`` (anything ``strtod`` reads);
* the file must be UTF-8; nesting deeper than 64 levels and duplicate keys in
  an object are rejected; ``NaN``/``Infinity`` are not JSON;
* integers are numbers written without fraction or exponent within
  [-2^63, 2^64); other numbers are floats, except that a negative float with
  an integral value within int64 (``-2.0``) is an integer (the C++ reader
  cannot tell them apart); a ``\u`` escape of a lone surrogate reads as
  U+FFFD;
* every object accepts a fixed set of keys; an unknown key is an error (this
  catches misspelt field names instead of silently using a default); when an
  object has several, the first in sorted order is reported;
* a value of the wrong JSON type is an error (``true`` is not a number and
  ``2.0`` is not an integer).

Paths are written the way the documentation writes them:
``layers[3].ffn.groups[1].experts`` (object keys joined with ``.``, list
indices in brackets; a key that is not an identifier is quoted:
``layer_overrides[0]["odd key"]``).
"""

import re

from .errors import ConfigError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Marker for "this field has no default; it must be present".
REQUIRED = object()

#: The largest integer an integer field takes.
INT64_MAX = 2 ** 63 - 1

#: Deepest nesting accepted (as in the C++ reader).
MAX_DEPTH = 64


def is_identifier(text):
    """Whether ``text`` is a name: letters, digits and '_', not starting with
    a digit."""
    return _IDENT.fullmatch(text) is not None


def quote(text):
    """``text`` as a JSON string the way llvm::json writes it: only ``"``,
    ``\\`` and control characters are escaped."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) >= 0x20:
            out.append(c)
        else:
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(c, f"\\u{ord(c):04x}"))
    out.append('"')
    return "".join(out)


def format_path(path):
    """Formats a path tuple (str keys and int indices) as ``a.b[3].c``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif is_identifier(part):
            text += ("." if text else "") + part
        else:
            text += f"[{quote(part)}]"
    return text


class JsonTextError(ValueError):
    """A JSON text error at byte ``offset``."""

    def __init__(self, offset, what):
        super().__init__(what)
        self.offset = offset
        self.what = what


def _place(raw, offset, what):
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"invalid JSON at line {line} column {column}: {what}"


def _too_deep(raw):
    """Offset of the bracket that opens level MAX_DEPTH + 1, counting brackets
    outside strings (a string runs from a quote to the next unescaped quote),
    or None.  Checked before the syntax, as the C++ reader does."""
    depth, i, n = 0, 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x22:  # '"'
            i += 1
            while i < n and raw[i] != 0x22:
                i += 2 if raw[i] == 0x5C else 1
        elif c in (0x7B, 0x5B):  # '{' '['
            if depth == MAX_DEPTH:
                return i
            depth += 1
        elif c in (0x7D, 0x5D):  # '}' ']'
            depth = max(depth - 1, 0)
        i += 1
    return None


_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_NUMBER_CHARS = re.compile(rb"[0-9eE+\-.]*")
_PLAIN = re.compile(rb"[^\"\\\x00-\x1f]*")
_STRTOLL = re.compile(rb"[+-]?[0-9]+")
_STRTOD = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HEX = b"0123456789abcdefABCDEF"


class _Parser:
    """llvm::json's recursive-descent parser (llvm/lib/Support/JSON.cpp),
    step by step: the same grammar, messages and error offsets."""

    def __init__(self, raw):
        self.s = raw
        self.p = 0
        self.duplicate = None  # (offset, key) of the first duplicate key

    def fail(self, what):
        raise JsonTextError(self.p, what)

    def next(self):
        if self.p == len(self.s):
            return 0
        self.p += 1
        return self.s[self.p - 1]

    def peek(self):
        return self.s[self.p] if self.p < len(self.s) else 0

    def eat_whitespace(self):
        self.p = _WHITESPACE.match(self.s, self.p).end()

    def literal(self, rest, value, what):
        for c in rest:
            if self.next() != c:
                self.fail(what)
        return value

    def value(self):
        self.eat_whitespace()
        if self.p == len(self.s):
            self.fail("Unexpected EOF")
        c = self.next()
        if c == 0x6E:  # n
            return self.literal(b"ull", None, "Invalid JSON value (null?)")
        if c == 0x74:  # t
            return self.literal(b"rue", True, "Invalid JSON value (true?)")
        if c == 0x66:  # f
            return self.literal(b"alse", False, "Invalid JSON value (false?)")
        if c == 0x22:
            return self.string()
        if c == 0x5B:  # [
            out = []
            self.members(0x5D, lambda: out.append(self.value()), "Expected , or ] after array element")
            return out
        if c == 0x7B:  # {
            out = {}
            self.members(0x7D, lambda: self.member(out), "Expected , or } after object property")
            return out
        if c in b"0123456789eE+-.":
            return self.number(c)
        self.fail("Invalid JSON value")

    def members(self, close, member, what):
        """The members of an array or object, up to the ``close`` byte."""
        self.eat_whitespace()
        if self.peek() == close:
            self.p += 1
            return
        while True:
            member()
            self.eat_whitespace()
            c = self.next()
            if c == close:
                return
            if c != 0x2C:  # ,
                self.fail(what)
            self.eat_whitespace()

    def member(self, out):
        """One ``"key": value`` of an object into ``out``."""
        start = self.p
        if self.next() != 0x22:
            self.fail("Expected object key")
        key = self.string()
        if key in out and self.duplicate is None:
            self.duplicate = (start, key)
        self.eat_whitespace()
        if self.next() != 0x3A:
            self.fail("Expected : after object key")
        self.eat_whitespace()
        out[key] = self.value()

    def number(self, first):
        # strtoll, then (not after '-') strtoull, then strtod, each of which
        # must read the whole run of number characters.
        start = self.p - 1
        self.p = _NUMBER_CHARS.match(self.s, self.p).end()
        text = self.s[start:self.p]
        if _STRTOLL.fullmatch(text):
            digits = text.lstrip(b"+-").lstrip(b"0") or b"0"
            if len(digits) <= 20:
                value = int(digits) * (-1 if first == 0x2D else 1)
                if -2 ** 63 <= value < (2 ** 63 if first == 0x2D else 2 ** 64):
                    return value
        if not _STRTOD.fullmatch(text):
            self.fail("Invalid JSON value (number?)")
        value = float(text.decode("ascii"))
        if value < 0 and value.is_integer() and value >= -2.0 ** 63:
            return int(value)  # Indistinguishable from an integer in llvm::json.
        return value

    def hex4(self):
        digits = bytes([self.next(), self.next(), self.next(), self.next()])
        if any(d not in _HEX for d in digits):
            self.fail("Invalid \\u escape sequence")
        return int(digits, 16)

    def string(self):
        out = bytearray()
        while True:
            # A run of ordinary bytes, but its last one read like the rest.
            end = _PLAIN.match(self.s, self.p).end()
            if end - 1 > self.p:
                out += self.s[self.p:end - 1]
                self.p = end - 1
            c = self.next()
            if c == 0x22:
                return out.decode("utf-8")
            if self.p == len(self.s):
                self.fail("Unterminated string")
            if c & 0x1F == c:
                self.fail("Control character in string")
            if c != 0x5C:
                out.append(c)
                continue
            c = self.next()
            if c in _ESCAPES:
                out += _ESCAPES[c]
            elif c == 0x75:  # u
                out += self.unicode().encode("utf-8")
            else:
                self.fail("Invalid escape sequence")

    def unicode(self):
        """One ``\\u`` escape (or a surrogate pair of two); a lone surrogate
        reads as U+FFFD."""
        out = ""
        first = self.hex4()
        while True:
            if first < 0xD800 or first >= 0xE000:
                return out + chr(first)
            if first >= 0xDC00:
                return out + "\ufffd"
            if self.p + 2 > len(self.s) or self.s[self.p] != 0x5C or self.s[self.p + 1] != 0x75:
                return out + "\ufffd"
            self.p += 2
            second = self.hex4()
            if second < 0xDC00 or second >= 0xE000:
                out += "\ufffd"
                first = second
                continue
            return out + chr(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))


_ESCAPES = {0x22: b'"', 0x5C: b"\\", 0x2F: b"/", 0x62: b"\b", 0x66: b"\f", 0x6E: b"\n",
            0x72: b"\r", 0x74: b"\t"}


def parse_json_bytes(raw):
    """Parses UTF-8 JSON text given as bytes; raises JsonTextError (with a
    byte offset) or, for text that is not UTF-8, UnicodeDecodeError."""
    raw.decode("utf-8")
    deep = _too_deep(raw)
    if deep is not None:
        raise JsonTextError(deep, f"nested deeper than {MAX_DEPTH} levels")
    parser = _Parser(raw)
    value = parser.value()
    parser.eat_whitespace()
    if parser.p != len(raw):
        parser.fail("Text after end of document")
    if parser.duplicate is not None:
        offset, key = parser.duplicate
        raise JsonTextError(offset, f"duplicate key {quote(key)} in an object")
    return value


def load_json_file(filename):
    """Reads a JSON file strictly; raises ConfigError naming the file."""
    try:
        with open(filename, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(filename, "", f"cannot read file: {e.strerror}") from None
    return _parse(raw, filename)


def parse_json_text(text, filename=""):
    """Parses JSON text (a str) strictly (see module docstring)."""
    return _parse(text.encode("utf-8", "surrogatepass"), filename)


def _parse(raw, filename):
    try:
        return parse_json_bytes(raw)
    except UnicodeDecodeError as e:
        raise ConfigError(filename, "", f"not UTF-8 text (byte {e.start})") from None
    except JsonTextError as e:
        raise ConfigError(filename, "", _place(raw, e.offset, e.what)) from None


def json_type_name(value):
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Context:
    """Where errors go: the file name and the provenance of expanded values.

    ``origins`` maps a path prefix of the *effective* document to the path in
    the file where that sub-tree was written (used for expanded layers: the
    effective ``layers[3].ffn`` may come from ``layer.ffn`` or
    ``layer_overrides[0].ffn``).  ``None`` means paths are file paths.
    """

    def __init__(self, filename, origins=None, base=(), document=None):
        self.filename = filename
        self.origins = origins
        self.base = base
        self.document = document

    def source_of(self, path):
        """The file path of the value at effective ``path``, or None when the
        file wrote no value there (a derived default, a missing key)."""
        if self.origins is None:
            return None
        rel = tuple(path[len(self.base):])
        node = self.document
        for part in rel:
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return None
        for n in range(len(rel), -1, -1):
            if rel[:n] in self.origins:
                return format_path(self.origins[rel[:n]] + rel[n:])
        return None

    def error(self, path, rule):
        """Builds the ConfigError for ``path``."""
        return ConfigError(self.filename, format_path(path), rule, self.source_of(path))


class Obj:
    """Typed, checked access to the keys of one JSON object.

    Unknown keys are reported as soon as the object is opened, so that a
    misspelt key is reported as such and not as a missing required key (the
    first in sorted order: the C++ reader's objects have no key order).
    """

    def __init__(self, value, path, ctx, keys):
        if not isinstance(value, dict):
            raise ctx.error(path, f"must be an object, not {json_type_name(value)}")
        self.value = value
        self.path = tuple(path)
        self.ctx = ctx
        for key in sorted(value):
            if key not in keys:
                known = ", ".join(keys)
                raise ctx.error(self.path + (key,), f"unknown key (expected one of: {known})")

    def at(self, key):
        """The path of ``key`` inside this object."""
        return self.path + (key,)

    def error(self, key, rule):
        """A ConfigError for ``key`` of this object."""
        return self.ctx.error(self.at(key), rule)

    def has(self, key):
        return key in self.value

    def raw(self, key, default=REQUIRED):
        """The value of ``key`` without type checks."""
        if key in self.value:
            return self.value[key]
        if default is REQUIRED:
            raise self.error(key, "required")
        return default

    def integer(self, key, default=REQUIRED, minimum=None, maximum=None):
        value = self.raw(key, default)
        if key not in self.value:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, not {json_type_name(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum}")
        if value > INT64_MAX:
            raise self.error(key, f"must be <= {INT64_MAX} (the largest integer supported)")
        return value

    def number(self, key, default=REQUIRED, minimum=None, above=None, maximum=None):
        """A JSON number (integer or not) as a Python float.

        ``minimum`` is inclusive, ``above`` exclusive, ``maximum`` inclusive.
        """
        value = self.raw(key, default)
        if key not in self.value:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, not {json_type_name(value)}")
        value = float(value)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum:g}")
        if above is not None and value <= above:
            raise self.error(key, f"must be > {above:g}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum:g}")
        return value

    def boolean(self, key, default=REQUIRED):
        value = self.raw(key, default)
        if key in self.value and not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {json_type_name(value)}")
        return value

    def string(self, key, default=REQUIRED, choices=None, pattern=None):
        value = self.raw(key, default)
        if key not in self.value:
            return value
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {json_type_name(value)}")
        if choices is not None and value not in choices:
            options = " | ".join(choices)
            raise self.error(key, f"must be one of {options}, not {quote(value)}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self.error(key, f"{quote(value)} is not a valid name (letters, digits, '_'; not starting with a digit)")
        return value

    def array(self, key, default=REQUIRED, min_length=0):
        value = self.raw(key, default)
        if key not in self.value:
            return value
        if not isinstance(value, list):
            raise self.error(key, f"must be a list, not {json_type_name(value)}")
        if len(value) < min_length:
            raise self.error(key, f"must have at least {min_length} entr{'y' if min_length == 1 else 'ies'}")
        return value

    def obj(self, key, keys, default=REQUIRED):
        """Opens the object at ``key`` (``default`` must be a dict or REQUIRED)."""
        value = self.raw(key, default)
        return Obj(value, self.at(key), self.ctx, keys)
