"""Strict JSON reading with JSON-path error reporting.

The model definition and the token file are read with the same rules:

* the file must be UTF-8 JSON; ``NaN``/``Infinity`` and duplicate keys in an
  object are rejected;
* every object accepts a fixed set of keys; an unknown key is an error (this
  catches misspelt field names instead of silently using a default);
* a value of the wrong JSON type is an error (``true`` is not a number and
  ``2.0`` is not an integer).

Paths are written the way the documentation writes them:
``layers[3].ffn.groups[1].experts`` (object keys joined with ``.``, list
indices in brackets; a key that is not an identifier is quoted:
``layer_overrides[0]["odd key"]``).
"""

import json
import re

from .errors import ConfigError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Marker for "this field has no default; it must be present".
REQUIRED = object()


def format_path(path):
    """Formats a path tuple (str keys and int indices) as ``a.b[3].c``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENT.match(part):
            text += ("." if text else "") + part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {json.dumps(key)} in an object")
        obj[key] = value
    return obj


def load_json_file(filename):
    """Reads a JSON file strictly; raises ConfigError naming the file."""
    try:
        with open(filename, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(filename, "", f"cannot read file: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(filename, "", f"not UTF-8 text (byte {e.start})") from None
    return parse_json_text(text, filename)


def parse_json_text(text, filename=""):
    """Parses JSON text strictly (see module docstring)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(filename, "", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except ValueError as e:
        raise ConfigError(filename, "", f"invalid JSON: {e}") from None


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

    def __init__(self, filename, origins=None, base=()):
        self.filename = filename
        self.origins = origins
        self.base = base

    def source_of(self, path):
        """The file path of the value at effective ``path`` (or None)."""
        if self.origins is None:
            return None
        rel = tuple(path[len(self.base):])
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
    misspelt key is reported as such and not as a missing required key.
    """

    def __init__(self, value, path, ctx, keys):
        if not isinstance(value, dict):
            raise ctx.error(path, f"must be an object, not {json_type_name(value)}")
        self.value = value
        self.path = tuple(path)
        self.ctx = ctx
        for key in value:
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
            raise self.error(key, f"must be one of {options}, not {json.dumps(value)}")
        if pattern is not None and not re.match(pattern, value):
            raise self.error(key, f"{json.dumps(value)} is not a valid name (letters, digits, '_'; not starting with a digit)")
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
