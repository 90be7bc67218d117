#!/usr/bin/python3
# ctest-labels: parity
"""safetensors cross-check against torch (Debian's torch has no `safetensors` module, so the
format is parsed/written here with json + struct + numpy, as the spec describes).

1. Our writer (ctypes over HUBERT_LIB: st_write) -> parsed in Python: F32 bit-exact, BF16 equal to
   torch's round-to-nearest-even conversion, header padded to 8 with spaces.
2. Python writes F32/F16/BF16/F64 tensors (torch does the conversions) -> our reader (st_open +
   st_read_f32) must give exactly torch's `.float()` of each tensor, including inf/nan/subnormals.
"""
import ctypes as C
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch

lib_path = os.environ.get("HUBERT_LIB")
if not lib_path or not os.path.exists(lib_path):
    print("HUBERT_LIB not set or missing; skipping")
    sys.exit(77)
lib = C.CDLL(lib_path)

seed = int(os.environ.get("HUBERT_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
print(f"seed {seed} (set HUBERT_TEST_SEED to repeat)")
rng = np.random.default_rng(seed)

MAXD = 8
DT = {"F32": 0, "F16": 1, "BF16": 2, "F64": 3}


class Entry(C.Structure):
    _fields_ = [("name", C.c_char_p), ("data", C.POINTER(C.c_float)), ("ndim", C.c_int), ("shape", C.c_int64 * MAXD)]


class Tensor(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_int), ("ndim", C.c_int), ("shape", C.c_int64 * MAXD),
                ("begin", C.c_size_t), ("end", C.c_size_t)]


class ST(C.Structure):
    _fields_ = [("path", C.c_char_p), ("n", C.c_int), ("tensors", C.POINTER(Tensor)), ("n_meta", C.c_int),
                ("meta_keys", C.POINTER(C.c_char_p)), ("meta_values", C.POINTER(C.c_char_p)),
                ("data", C.POINTER(C.c_uint8)), ("data_len", C.c_size_t)]


lib.st_write.argtypes = [C.c_char_p, C.c_int, C.POINTER(Entry), C.c_int, C.c_int, C.POINTER(C.c_char_p), C.POINTER(C.c_char_p)]
lib.st_open.argtypes = [C.c_char_p, C.POINTER(ST)]
lib.st_close.argtypes = [C.POINTER(ST)]
lib.st_find.argtypes = [C.POINTER(ST), C.c_char_p]
lib.st_find.restype = C.POINTER(Tensor)
lib.st_read_f32.argtypes = [C.POINTER(ST), C.POINTER(Tensor), C.POINTER(C.c_float), C.c_size_t]
lib.hb_errmsg.restype = C.c_char_p

failures = 0


def check(ok, what):
    global failures
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        failures += 1


def py_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    return n, header, raw[8 + n:]


def py_write(path, tensors, metadata=None):
    """HF layout: tensors packed in order, header padded with spaces to a multiple of 8."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, arr) in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def special_values(n):
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)).astype(np.float32)
    sp = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45, 6e-8, 65504.0], dtype=np.float32)
    x[:min(n, 8)] = sp[:min(n, 8)]
    return x


with tempfile.TemporaryDirectory() as d:
    # ---- 1. our writer -> Python reader ------------------------------------------------------------
    shapes = {"encoder.layers.0.attention.q_proj.weight": (rng.integers(1, 40), rng.integers(1, 40)),
              "encoder.layers.0.attention.q_proj.bias": (rng.integers(1, 100),),
              "masked_spec_embed": (rng.integers(1, 50),),
              "scalar": ()}
    arrays = {k: special_values(int(np.prod(s))).reshape(s) for k, s in shapes.items()}
    keep = []
    entries = (Entry * len(arrays))()
    for i, (k, a) in enumerate(arrays.items()):
        a = np.require(a, dtype=np.float32, requirements="C")  # keeps 0-d (ascontiguousarray would not)
        keep.append(a)
        entries[i].name = k.encode()
        entries[i].data = a.ctypes.data_as(C.POINTER(C.c_float))
        entries[i].ndim = a.ndim
        for j, s in enumerate(a.shape):
            entries[i].shape[j] = s
    mk = (C.c_char_p * 1)(b"format")
    mv = (C.c_char_p * 1)(b"pt")
    for dt in ("F32", "BF16"):
        path = os.path.join(d, f"ours_{dt}.safetensors")
        rc = lib.st_write(path.encode(), len(arrays), entries, DT[dt], 1, mk, mv)
        check(rc == 0, f"st_write {dt}: {lib.hb_errmsg().decode() if rc else 'written'}")
        n, header, data = py_read(path)
        check(n % 8 == 0, f"{dt}: header length {n} is a multiple of 8")
        check(header.get("__metadata__") == {"format": "pt"}, f"{dt}: __metadata__ round trip")
        for k, a in arrays.items():
            e = header[k]
            b0, b1 = e["data_offsets"]
            check(e["dtype"] == dt and tuple(e["shape"]) == a.shape, f"{dt} {k}: dtype/shape {e['dtype']} {e['shape']}")
            if dt == "F32":
                got = np.frombuffer(data[b0:b1], dtype="<u4")
                want = a.astype("<f4").view("<u4").ravel()
                same = np.array_equal(got, want)
                check(same, f"F32 {k}: {a.size} values bit-exact")
            else:
                got = np.frombuffer(data[b0:b1], dtype="<u2")
                want = torch.from_numpy(a.ravel().copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
                nan = np.isnan(a.ravel())
                got_nan = (got & 0x7FFF) > 0x7F80
                same = np.array_equal(got[~nan], want[~nan]) and bool(np.all(got_nan[nan]))
                check(same, f"BF16 {k}: {a.size} values equal torch's round-to-nearest-even "
                            f"({int((got[~nan] != want[~nan]).sum())} differ)")

    # ---- 2. Python writer -> our reader --------------------------------------------------------------
    base = special_values(int(rng.integers(100, 3000)))
    sub16 = np.array([2.0 ** -24, 2.0 ** -20, -(2.0 ** -15), 1e-9], dtype=np.float32)   # f16 subnormals / underflow
    src = np.concatenate([base, sub16])
    t = torch.from_numpy(src)
    tensors = {
        "f32": ("F32", src.astype("<f4")),
        "f16": ("F16", t.half().numpy().astype("<f2")),
        "bf16": ("BF16", t.bfloat16().view(torch.int16).numpy().astype("<i2")),
        "f64": ("F64", src.astype("<f8") * 1.0000001),
        "f16_2d": ("F16", t[: (src.size // 4) * 4].half().reshape(4, -1).numpy().astype("<f2")),
    }
    want = {
        "f32": t,
        "f16": t.half().float(),
        "bf16": t.bfloat16().float(),
        "f64": torch.from_numpy(src.astype(np.float64) * 1.0000001).float(),
        "f16_2d": t[: (src.size // 4) * 4].half().float(),
    }
    path = os.path.join(d, "py.safetensors")
    py_write(path, tensors, {"source": "python"})
    st = ST()
    rc = lib.st_open(path.encode(), C.byref(st))
    check(rc == 0, f"st_open python-written file: {lib.hb_errmsg().decode() if rc else 'ok'}")
    if rc == 0:
        for k, (dt, arr) in tensors.items():
            tp = lib.st_find(C.byref(st), k.encode())
            check(bool(tp), f"{k}: found")
            if not tp:
                continue
            out = np.empty(arr.size, dtype=np.float32)
            r = lib.st_read_f32(C.byref(st), tp, out.ctypes.data_as(C.POINTER(C.c_float)), out.size)
            check(r == 0, f"{k}: st_read_f32 {lib.hb_errmsg().decode() if r else ''}")
            w = want[k].numpy().ravel()
            nan = np.isnan(w)
            same = np.array_equal(np.isnan(out), nan) and np.array_equal(out[~nan].view(np.uint32), w[~nan].view(np.uint32))
            check(same, f"{dt} {k}: {arr.size} values identical to torch .float() (bitwise, NaN positions equal)")
            check(tuple(tp.contents.shape[i] for i in range(tp.contents.ndim)) == arr.shape, f"{k}: shape {arr.shape}")
        lib.st_close(C.byref(st))

    # ---- 3. a few bad files written from Python -------------------------------------------------
    def bad(header_obj, data, needle, claim=None):
        p = os.path.join(d, "bad.safetensors")
        h = json.dumps(header_obj).encode() if not isinstance(header_obj, bytes) else header_obj
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(h) if claim is None else claim) + h + data)
        s = ST()
        r = lib.st_open(p.encode(), C.byref(s))
        msg = lib.hb_errmsg().decode()
        check(r != 0 and needle in msg, f"bad file -> {msg!r} (expects {needle!r})")
        if r == 0:
            lib.st_close(C.byref(s))

    bad({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}, b"\0" * 8, "outside the data block")
    bad({"w": {"dtype": "Q4", "shape": [3], "data_offsets": [0, 12]}}, b"\0" * 12, "unknown dtype 'Q4'")
    bad({"w": {"dtype": "F16", "shape": [3], "data_offsets": [0, 12]}}, b"\0" * 12, "needs 6 bytes")
    bad(b"{not json}", b"", "invalid JSON header")
    bad({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "beyond the end", claim=1 << 40)

print(f"test_safetensors_torch: {'FAILED' if failures else 'all checks passed'} (seed {seed})")
sys.exit(1 if failures else 0)
