"""Reader for the IDX file format of MNIST (LeCun et al.).

An IDX file starts with a big-endian header: two zero bytes, a type byte
(0x08 = unsigned byte), the number of dimensions, then one big-endian uint32
per dimension, followed by the data in C order.
"""

import gzip
import os

import numpy as np

__all__ = ["read_idx"]

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read an IDX file (raw or gzip-compressed) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        File to read; a name ending in ``.gz`` is decompressed.

    Returns
    -------
    array : ndarray
        The stored array, with the shape given in the header.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the magic number, the data type or the size of the file does not
        match the IDX format.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except gzip.BadGzipFile as exc:
        raise ValueError(f"{path!r} is not a valid gzip file: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path!r} is not an IDX file: bad magic number "
            f"(expected two zero bytes, got {raw[:4].hex() or 'an empty file'})."
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path!r}: unknown IDX data type code 0x{type_code:02x}.")
    if ndim == 0:
        raise ValueError(f"{path!r}: IDX header declares zero dimensions.")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{path!r}: file ends inside the IDX header.")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        raise ValueError(
            f"{path!r}: header declares shape {shape} ({expected} data bytes) but "
            f"the file holds {actual} data bytes; the file is truncated or corrupt."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
