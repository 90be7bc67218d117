"""Finds and loads libhubert.so and declares the C API (eval/hubert_capi.h)."""
import ctypes
import ctypes.util
import os

CAPI_VERSION = 1
_lib = None


def _candidates():
    env = os.environ.get("HUBERT_LIB")
    if env:
        yield env, "$HUBERT_LIB"
        return
    try:
        from . import _build_info
        if _build_info.LIB_PATH:
            yield _build_info.LIB_PATH, "the path recorded at install time"
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    import glob
    default = os.path.join(here, "..", "..", "build", "libhubert.so")
    rest = sorted(glob.glob(os.path.join(here, "..", "..", "build*", "libhubert.so")), key=os.path.getmtime, reverse=True)
    for p in ([default] if os.path.isfile(default) else []) + rest:
        yield p, "the source checkout"
    found = ctypes.util.find_library("hubert")
    yield found or "libhubert.so", "the system search path"


def load():
    """The loaded library (cached). Raises OSError naming every place that was tried."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path, why in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s): %s" % (path, why, e))
            continue
        _declare(lib)
        v = lib.hubert_capi_version()
        if v != CAPI_VERSION:
            tried.append("%s (%s): C API version %d, this package needs %d" % (path, why, v, CAPI_VERSION))
            continue
        _lib = lib
        return lib
    raise OSError("hubert_c: cannot load libhubert.so; set HUBERT_LIB=/path/to/libhubert.so. Tried:\n  " + "\n  ".join(tried))


def _declare(lib):
    c = ctypes
    f32p = c.POINTER(c.c_float)
    i64p = c.POINTER(c.c_int64)
    sig = {
        "hubert_capi_version": (c.c_int, []),
        "hubert_last_error": (c.c_char_p, []),
        "hubert_open": (c.c_void_p, [c.c_char_p, c.c_char_p, c.c_int]),
        "hubert_close": (None, [c.c_void_p]),
        "hubert_num_layers": (c.c_int, [c.c_void_p]),
        "hubert_hidden_size": (c.c_int, [c.c_void_p]),
        "hubert_downsample_rate": (c.c_int, [c.c_void_p]),
        "hubert_receptive_field": (c.c_int, [c.c_void_p]),
        "hubert_num_frames": (c.c_int64, [c.c_void_p, c.c_int64]),
        "hubert_forward": (c.c_int64, [c.c_void_p, f32p, c.c_int64, f32p, c.c_int64]),
        "hubert_forward_batch": (c.c_int64, [c.c_void_p, f32p, i64p, c.c_int, c.c_int64, f32p, c.c_int64, i64p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def last_error(lib):
    m = lib.hubert_last_error()
    return m.decode("utf-8", "replace") if m else "unknown error"
