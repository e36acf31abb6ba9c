"""Error types of the moma reference.

Every problem caused by input (model definition, weights, token file,
command line) is raised as :class:`MomaError` (or a subclass).  The command
line tool prints such errors as one line, without a traceback, and exits
with status 1.
"""


class MomaError(Exception):
    """An input error: the message names the file, the location and the rule."""


class ConfigError(MomaError):
    """A model definition or token file violates the documented schema.

    Attributes:
        file: the file being read (may be empty for in-memory dictionaries).
        path: the JSON path of the offending value, e.g.
            ``layers[3].ffn.groups[1].experts``.
        rule: what was wrong, e.g. ``must be >= 1``.
        source: for a value that the layer expansion copied from elsewhere in
            the file (``layer`` or ``layer_overrides[k]``), the path where it
            was written; otherwise ``None``.
    """

    def __init__(self, file, path, rule, source=None):
        self.file = file
        self.path = path
        self.rule = rule
        self.source = source
        text = f"{path}: {rule}" if path else rule
        if source and source != path:
            text += f" (value from {source})"
        if file:
            text = f"{file}: {text}"
        super().__init__(text)


class SafetensorsError(MomaError):
    """A safetensors file is damaged or does not match what the model needs."""
