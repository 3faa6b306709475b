"""The allow-list unpickler: plain data and tables load, anything else is refused unexecuted."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spiketune.data import safe_load
from spiketune.errors import DataError


class _RunsCommand:
    """Pickles as a call to os.system: what a crafted dataset file would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _CustomClass:
    pass


RECORDS = [{"letter": "A", "events": [[[0.1, 0.25], [0.5]], [[], []]]}]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_records_load(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "records.pkl"
    path.write_bytes(pickle.dumps(RECORDS, protocol=protocol))
    assert safe_load(path) == RECORDS


def test_numpy_arrays_and_scalars_load() -> None:
    obj = [np.arange(3.0), np.float64(2.5), np.array(["x", 1], dtype=object)]
    for protocol in (2, 5):
        loaded = safe_load(pickle.dumps(obj, protocol=protocol))
        assert np.array_equal(loaded[0], obj[0])
        assert loaded[1] == 2.5
        assert loaded[2].tolist() == ["x", 1]


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickle_calling_os_system_is_refused_and_not_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"letter": "A", "events": _RunsCommand(marker)}], protocol))
    with pytest.raises(DataError, match=r"refused to unpickle (posix|os|nt)\.system"):
        safe_load(path)
    assert not marker.exists()


def test_other_types_are_refused() -> None:
    # (Containers that pickle builds from opcodes alone, such as sets, call no code and pass.)
    for obj in (_CustomClass(), complex(1, 2), Path("x"), range(3)):
        with pytest.raises(DataError, match="refused"):
            safe_load(pickle.dumps(obj, protocol=4))


def test_truncated_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    data = pickle.dumps(RECORDS * 50, protocol=3)
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(DataError, match="truncated or corrupt"):
            safe_load(data[:cut])
    with pytest.raises(DataError, match="follow the end"):
        safe_load(data + b"junk")
    with pytest.raises(DataError, match="truncated or corrupt"):
        safe_load(b"\x80\x03garbage that is not a pickle")
    with pytest.raises(DataError, match="cannot read"):
        safe_load(tmp_path / "missing.pkl")


def test_pandas_table_loads_when_pandas_is_installed() -> None:
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"letter": ["A", "Space"], "events": [[[[0.1], []]], [[[], [0.2]]]]})
    for protocol in (2, 4, 5):
        loaded = safe_load(pickle.dumps(table, protocol=protocol))
        assert loaded["letter"].tolist() == ["A", "Space"]
        assert loaded["events"].tolist() == table["events"].tolist()


def test_pandas_table_can_be_refused() -> None:
    pd = pytest.importorskip("pandas")
    data = pickle.dumps(pd.DataFrame({"letter": ["A"]}), protocol=4)
    with pytest.raises(DataError, match="refused"):
        safe_load(data, allow_pandas=False)


def test_a_table_hiding_a_command_in_a_cell_is_refused(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    marker = tmp_path / "executed"
    table = pd.DataFrame({"letter": ["A"], "events": [_RunsCommand(marker)]})
    with pytest.raises(DataError, match="refused"):
        safe_load(pickle.dumps(table, protocol=4))
    assert not marker.exists()


def test_without_pandas_a_table_is_refused_with_advice(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    path = tmp_path / "table.pkl"
    import pandas as pd

    path.write_bytes(pickle.dumps(pd.DataFrame({"letter": ["A"]}), protocol=4))
    # A fresh interpreter in which importing pandas fails.
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from spiketune.data import safe_load\n"
        "from spiketune.errors import DataError\n"
        f"try:\n    safe_load({str(path)!r})\nexcept DataError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install pandas" in out.stdout
