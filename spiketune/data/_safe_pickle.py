"""Reading dataset pickles through an allow-list, never a bare ``pickle.load``.

A pickle can name any importable callable and have it called while loading; that is how a
crafted file runs ``os.system``. The unpickler here resolves only the names listed below and
refuses everything else with ``DataError`` before anything is called.

What is allowed:

- plain data (``list``, ``dict``, ``str``, ``float``, ``int``, ``bool``, ``None``, tuples):
  these are built by pickle opcodes and need no name at all;
- NumPy arrays and scalars, which come as ``numpy`` reconstruction helpers and ``dtype``;
- a pandas table (``DataFrame`` with its index and block manager), the form in which some
  releases of the Braille data are shipped. Reading one needs pandas installed; the names are
  resolved through pandas itself, while everything stored inside the table (the cells of an
  object column) still passes through this same allow-list.

A truncated or otherwise corrupt file is refused with ``DataError`` too.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

from spiketune.errors import DataError

# (module, name) pairs NumPy writes into pickles, across NumPy 1.x (numpy.core) and 2.x
# (numpy._core). Each one only builds an array, a scalar or a dtype from plain data.
_NUMPY_NAMES: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # Protocol 2 pickles store raw bytes as codecs.encode(text, "latin1").
        ("_codecs", "encode"),
        ("builtins", "slice"),
        ("__builtin__", "slice"),
    }
)

# The names a pandas DataFrame of plain columns is pickled with, by pandas 1.x to 3.x.
_PANDAS_NAMES: frozenset[tuple[str, str]] = frozenset(
    {
        ("pandas", "DataFrame"),
        ("pandas.core.frame", "DataFrame"),
        ("pandas", "Series"),
        ("pandas.core.series", "Series"),
        ("pandas", "Index"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas", "RangeIndex"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.internals.blocks", "new_block"),
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("pandas", "StringDtype"),
        ("pandas.core.arrays.string_", "StringDtype"),
        ("pandas.arrays", "StringArray"),
        ("pandas.core.arrays.string_", "StringArray"),
    }
)

# Classes pandas 2 removed; old pickles name them, pandas itself reads them as ``Index``.
_PANDAS_RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
}

_NUMPY_RENAMED: dict[str, str] = {
    # NumPy 2 moved numpy.core to numpy._core; resolve old names without the deprecation path.
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str, allow_pandas: bool) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allow_pandas = allow_pandas

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _NUMPY_NAMES:
            return _resolve_numpy(module, name)
        if self._allow_pandas and (key in _PANDAS_NAMES or key in _PANDAS_RENAMED):
            return _resolve_pandas(key, self._source)
        raise DataError(
            f"{self._source}: refused to unpickle {module}.{name}: only plain data "
            "(list, dict, str, float, int), NumPy arrays and pandas tables are allowed"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._source}: refused a pickle with persistent references")


def _resolve_numpy(module: str, name: str) -> Any:
    if module in ("builtins", "__builtin__"):
        return slice
    if module == "_codecs":
        import codecs

        return codecs.encode
    try:
        mod = importlib.import_module(_NUMPY_RENAMED.get(module, module))
    except ImportError:  # NumPy 1.x has no numpy._core
        mod = importlib.import_module(module)
    return getattr(mod, name)


def _resolve_pandas(key: tuple[str, str], source: str) -> Any:
    try:
        import pandas  # noqa: F401  (imported for its side effect of registering modules)
    except ImportError:
        raise DataError(
            f"{source} is a pandas-pickled table; reading it needs pandas "
            "(pip install pandas), or convert it once, where pandas is installed, into a "
            "plain list of dicts"
        ) from None
    module, name = _PANDAS_RENAMED.get(key, key)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise DataError(
            f"{source}: this pandas version cannot read {key[0]}.{key[1]}; read the file "
            "with the pandas version that wrote it and save it as a plain list of dicts"
        ) from None


def safe_load(source: str | Path | bytes, *, allow_pandas: bool = True) -> Any:
    """Unpickle a file (or bytes) through the allow-list described in this module.

    Raises ``DataError`` when the file is missing, holds a refused type, or is truncated or
    corrupt. Strings inside are decoded as Latin-1, which old Python 2 pickles need.
    """
    if isinstance(source, bytes):
        label, data = "<bytes>", source
    else:
        path = Path(source)
        label = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    stream = io.BytesIO(data)
    try:
        obj = _AllowListUnpickler(stream, label, allow_pandas).load()
    except DataError:
        raise
    except Exception as exc:
        # EOFError, UnpicklingError, and the ValueError/KeyError/IndexError/struct.error
        # a damaged opcode stream raises: all mean the same to the user.
        raise DataError(
            f"{label} is truncated or corrupt (unpickling failed: {type(exc).__name__}: {exc})"
        ) from None
    if stream.tell() != len(data):
        raise DataError(
            f"{label} is corrupt: {len(data) - stream.tell()} bytes follow the end of the pickle"
        )
    return obj
