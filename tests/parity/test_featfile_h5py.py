#!/usr/bin/python3
# ctest-labels: parity
"""Feature files vs h5py, both directions (ctypes over HUBERT_LIB).

1. Our writer (featfile_create/append/close) -> h5py: attributes, utt ids, offsets and every
   value identical.
2. h5py writes the same layout (variable-length and fixed-length string ids, float64 features,
   its default file format) -> our reader gives identical ids, offsets and float32 values; a
   file h5py writes with bad offsets is rejected with a message naming the dataset.
"""
import ctypes as C
import os
import sys
import tempfile

import h5py
import numpy as np

lib_path = os.environ.get("HUBERT_LIB")
if not lib_path or not os.path.exists(lib_path):
    print("HUBERT_LIB not set or missing; skipping")
    sys.exit(77)
lib = C.CDLL(lib_path)
seed = int(os.environ.get("HUBERT_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
print(f"seed {seed} (set HUBERT_TEST_SEED to repeat)")
rng = np.random.default_rng(seed)


class Info(C.Structure):
    _fields_ = [("kind", C.c_char_p), ("rate", C.c_double), ("n_attrs", C.c_int),
                ("attr_keys", C.POINTER(C.c_char_p)), ("attr_values", C.POINTER(C.c_char_p))]


P = C.c_void_p
lib.featfile_create.argtypes = [C.c_char_p, C.POINTER(Info), C.c_int, C.POINTER(C.c_char_p), C.POINTER(C.c_int), C.POINTER(P)]
lib.featfile_append.argtypes = [P, C.c_char_p, C.c_int64, C.POINTER(C.POINTER(C.c_float))]
lib.featfile_close.argtypes = [P]
lib.featfile_open.argtypes = [C.c_char_p, C.POINTER(P)]
lib.featfile_free.argtypes = [P]
lib.featfile_num_utts.argtypes = [P]
lib.featfile_num_utts.restype = C.c_int64
lib.featfile_utt_id.argtypes = [P, C.c_int64]
lib.featfile_utt_id.restype = C.c_char_p
lib.featfile_offsets.argtypes = [P]
lib.featfile_offsets.restype = C.POINTER(C.c_int64)
lib.featfile_kind.argtypes = [P]
lib.featfile_kind.restype = C.c_char_p
lib.featfile_rate.argtypes = [P]
lib.featfile_rate.restype = C.c_double
lib.featfile_dataset.argtypes = [P, C.c_char_p, C.POINTER(C.c_int), C.POINTER(C.c_int64)]
lib.featfile_read_rows.argtypes = [P, C.c_char_p, C.c_int64, C.c_int64, C.POINTER(C.c_float)]
lib.featfile_attr.argtypes = [P, C.c_char_p]
lib.featfile_attr.restype = C.c_char_p
lib.hb_errmsg.restype = C.c_char_p

failures = 0


def check(ok, what):
    global failures
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        failures += 1


U = int(rng.integers(3, 12))
lens = rng.integers(0, 300, U)
lens[rng.integers(0, U)] = 0
ids = [f"spk{u % 3}/utt_{u}_ü" for u in range(U)]
dims = {"layer_0": int(rng.integers(1, 40)), "layer_6": int(rng.integers(100, 800))}
feats = {k: [rng.standard_normal((n, d)).astype(np.float32) for n in lens] for k, d in dims.items()}
off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)

with tempfile.TemporaryDirectory() as tmp:
    # ---- 1. ours -> h5py ----------------------------------------------------------------------
    path = os.path.join(tmp, "ours.h5")
    names = (C.c_char_p * 2)(*[k.encode() for k in dims])
    cdims = (C.c_int * 2)(*dims.values())
    keys = (C.c_char_p * 1)(b"model")
    vals = (C.c_char_p * 1)(b"models/iter1")
    info = Info(b"hubert", 50.0, 1, keys, vals)
    w = P()
    rc = lib.featfile_create(path.encode(), C.byref(info), 2, names, cdims, C.byref(w))
    check(rc == 0, f"featfile_create {lib.hb_errmsg().decode() if rc else ''}")
    for u in range(U):
        arrs = [np.ascontiguousarray(feats[k][u]) for k in dims]
        ptrs = (C.POINTER(C.c_float) * 2)(*[a.ctypes.data_as(C.POINTER(C.c_float)) for a in arrs])
        rc = lib.featfile_append(w, ids[u].encode(), int(lens[u]), ptrs)
        if rc:
            check(False, f"append {u}: {lib.hb_errmsg().decode()}")
    rc = lib.featfile_close(w)
    check(rc == 0, f"featfile_close {lib.hb_errmsg().decode() if rc else ''}")
    with h5py.File(path, "r") as f:
        a = f.attrs
        check(a["format"] == "hubert-features" and a["version"] == 1 and a["kind"] == "hubert" and a["rate"] == 50.0
              and a["sample_rate"] == 16000 and a["num_utts"] == U and a["model"] == "models/iter1",
              f"h5py sees the attributes {dict(a)}")
        check(list(f["utt_id"].asstr()[:]) == ids, f"h5py reads {U} utf-8 utt ids")
        check(np.array_equal(f["offsets"][:], off), f"offsets {f['offsets'][:].tolist()}")
        for k in dims:
            x = f[k][:]
            check(x.dtype == np.float32 and np.array_equal(x, np.concatenate(feats[k])),
                  f"{k}: {x.shape} identical in h5py (chunks {f[k].chunks})")

    # ---- 2. h5py -> ours ------------------------------------------------------------------------
    for variant in ("vlen", "fixed"):
        path = os.path.join(tmp, f"py_{variant}.h5")
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "hubert-features"
            f.attrs["version"] = np.int32(1)
            f.attrs["kind"] = "mfcc"
            f.attrs["rate"] = 100.0
            f.attrs["sample_rate"] = 16000
            f.attrs["num_utts"] = U
            f.attrs["note"] = "written by h5py"
            if variant == "vlen":
                f.create_dataset("utt_id", data=ids, dtype=h5py.string_dtype())
            else:
                enc = [s.encode() for s in ids]
                f.create_dataset("utt_id", data=np.array(enc, dtype=f"S{max(map(len, enc))}"))
            f.create_dataset("offsets", data=off)
            for k in dims:
                f.create_dataset(k, data=np.concatenate(feats[k]).astype(np.float64))
            f.create_group("extra")   # other objects are ignored
        h = P()
        rc = lib.featfile_open(path.encode(), C.byref(h))
        check(rc == 0, f"{variant}: featfile_open {lib.hb_errmsg().decode() if rc else ''}")
        if rc:
            continue
        got_ids = [lib.featfile_utt_id(h, u).decode() for u in range(lib.featfile_num_utts(h))]
        check(got_ids == ids, f"{variant}: utt ids")
        o = lib.featfile_offsets(h)
        check([o[i] for i in range(U + 1)] == off.tolist(), f"{variant}: offsets")
        check(lib.featfile_kind(h) == b"mfcc" and lib.featfile_rate(h) == 100.0 and lib.featfile_attr(h, b"note") == b"written by h5py",
              f"{variant}: kind, rate, free attribute")
        for k, dm in dims.items():
            d, n = C.c_int(), C.c_int64()
            lib.featfile_dataset(h, k.encode(), C.byref(d), C.byref(n))
            out = np.empty((n.value, d.value), dtype=np.float32)
            rc = lib.featfile_read_rows(h, k.encode(), 0, n.value, out.ctypes.data_as(C.POINTER(C.c_float)))
            want = np.concatenate(feats[k])
            check(rc == 0 and d.value == dm and np.array_equal(out, want), f"{variant}: {k} {out.shape} identical")
        lib.featfile_free(h)

    path = os.path.join(tmp, "bad.h5")
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "hubert-features", "version": 1, "kind": "mfcc", "rate": 100.0, "num_utts": 2})
        f.create_dataset("utt_id", data=["a", "b"], dtype=h5py.string_dtype())
        f.create_dataset("offsets", data=np.array([0, 5, 3], dtype=np.int64))
        f.create_dataset("feats", data=np.zeros((3, 4), np.float32))
    h = P()
    rc = lib.featfile_open(path.encode(), C.byref(h))
    msg = lib.hb_errmsg().decode()
    check(rc != 0 and "bad.h5" in msg and "/offsets decreases at index 2" in msg, f"bad offsets -> {msg!r}")

print(f"test_featfile_h5py: {'FAILED' if failures else 'all checks passed'} (seed {seed})")
sys.exit(1 if failures else 0)
