"""Numba's on-disk cache made safe for processes that compile at the same time.

Numba (0.68) keeps one index file per jitted function, mapping each compiled
overload's key to a data file numbered by counting (``f-12.py311.1.nbc``,
``.2.nbc``, ...). Two processes that compile different overloads of one
function at once (pytest-xdist workers, the worker processes of
``mpsim cl-sweep``, two training runs) both read the index, both take number
1 and both write it: the index then maps one overload to the other's machine
code, and every later run loads that wrong code without a word.

No public Numba API names the data files, so this one place replaces
:meth:`numba.core.caching.IndexDataCacheFile.save` with a version that names a
new data file after a digest of its overload's key: two overloads never share
a file. A concurrent writer can still drop another's index entry; that
overload is then compiled again, never loaded wrong.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

from numba.core import caching

__all__ = ["NUMBA_SAVE", "install", "key_number"]

#: Numba's own save, kept for the test that shows the race it has.
NUMBA_SAVE = caching.IndexDataCacheFile.save


def key_number(key: Any) -> int:
    """A 63-bit number from an overload's cache key: its data file's number, the same for the same key."""
    return int.from_bytes(hashlib.sha256(pickle.dumps(key, protocol=4)).digest()[:8], "big") >> 1


def _save(self: caching.IndexDataCacheFile, key: Any, data: Any) -> None:
    """:meth:`IndexDataCacheFile.save`, the data file named by :func:`key_number` rather than by counting."""
    overloads = self._load_index()
    data_name = overloads.get(key)
    if data_name is None:
        data_name = self._data_name(key_number(key))
        overloads[key] = data_name
        self._save_index(overloads)
    self._save_data(data_name, data)


def install() -> None:
    """Use :func:`_save` for every Numba cache in this process (idempotent)."""
    caching.IndexDataCacheFile.save = _save
