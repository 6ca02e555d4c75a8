"""The one payload dtype table of the wire format (``FeatureMap.dtype``, ``SceneTokens.dtype``).

Payloads are raw little-endian bytes; code 0 is float32, code 1 is float16
(msg/FeatureMap.msg, msg/SceneTokens.msg).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DTYPE_FLOAT16", "DTYPE_FLOAT32", "WIRE_DTYPES", "dtype_code", "wire_code"]

#: FeatureMap.DTYPE_FLOAT32
DTYPE_FLOAT32 = 0
#: FeatureMap.DTYPE_FLOAT16
DTYPE_FLOAT16 = 1

#: Wire dtype code -> the little-endian numpy dtype of the payload.
WIRE_DTYPES: dict[int, np.dtype[np.float32] | np.dtype[np.float16]] = {
    DTYPE_FLOAT32: np.dtype("<f4"),
    DTYPE_FLOAT16: np.dtype("<f2"),
}

_CODE_BY_ITEMSIZE = {dtype.itemsize: code for code, dtype in WIRE_DTYPES.items()}


def wire_code(dtype: object) -> int | None:
    """Wire code of a float32 / float16 numpy or torch dtype or name (any byte order), else None."""
    text = str(dtype)
    try:
        np_dtype = np.dtype(text[len("torch.") :] if text.startswith("torch.") else dtype)  # type: ignore[call-overload]
    except TypeError:
        return None
    if np_dtype.kind != "f":
        return None
    return _CODE_BY_ITEMSIZE.get(np_dtype.itemsize)


def dtype_code(dtype: object) -> int:
    """FeatureMap.dtype code for a numpy / torch dtype or name (float32 or float16).

    Raises:
        ValueError: Any other dtype.
    """
    code = wire_code(dtype)
    if code is None:
        raise ValueError(f"FeatureMap payload dtype must be float32 or float16, got {dtype!r}")
    return code
