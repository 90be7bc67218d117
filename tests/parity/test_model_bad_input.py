"""Bad input to `hubert extract` / `hubert info`: every case must exit non-zero with a specific
message naming the file and the problem, and a failing run must not replace an existing output.
ctest-labels: unit
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubert_testlib as tl  # noqa: E402

failures = []


def expect_error(args, *needles, label=""):
    p = subprocess.run([tl.HUBERT_BIN] + args, capture_output=True, text=True)
    msg = (p.stderr + p.stdout).strip().splitlines()
    last = msg[-1] if msg else ""
    ok = p.returncode != 0 and all(n.lower() in (p.stderr + p.stdout).lower() for n in needles)
    print(f"  {'ok ' if ok else 'FAIL'} {label or ' '.join(args[:2])}: exit {p.returncode}: {last}")
    if not ok:
        failures.append(label)


def rewrite_safetensors(src, dst, edit):
    """Parse src, let edit(header, data) -> (header, data) change it, write dst."""
    with open(src, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header, data = edit(header, raw[8 + n:])
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def copy_model(src, dst, st_edit=None, cfg_edit=None):
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    if cfg_edit:
        cfg_edit(cfg)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f)
    rewrite_safetensors(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"),
                        st_edit or (lambda h, d: (h, d)))


def main():
    rng = np.random.default_rng(tl.test_seed())
    with tempfile.TemporaryDirectory() as tmp:
        j = lambda *p: os.path.join(tmp, *p)  # noqa: E731
        tl.run(["init", "--config", "tiny", "--out", j("good"), "--seed", "3"])
        good = j("good.wav")
        tl.write_wav16(good, tl.speechlike(rng, 8000))
        tl.run(["extract", "--model", j("good"), "--out", j("ok.h5"), good])  # the baseline works

        # --- model folders ---
        with open(j("good", "model.safetensors"), "rb") as f:
            raw = f.read()
        os.makedirs(j("trunc"))
        with open(j("good", "config.json")) as f:
            cfg = f.read()
        with open(j("trunc", "config.json"), "w") as f:
            f.write(cfg)
        with open(j("trunc", "model.safetensors"), "wb") as f:
            f.write(raw[: len(raw) // 2])
        expect_error(["extract", "--model", j("trunc"), "--out", j("x.h5"), good], "model.safetensors", label="truncated safetensors")

        def bad_shape(h, d):
            h["encoder.layers.0.attention.q_proj.bias"]["shape"] = [2, 32]
            return h, d
        copy_model(j("good"), j("shape"), st_edit=bad_shape)
        expect_error(["info", "--model", j("shape")], "q_proj.bias", label="wrong shape")

        def bad_dtype(h, d):
            h["encoder.layer_norm.weight"]["dtype"] = "Q4_K"
            return h, d
        copy_model(j("good"), j("dtype"), st_edit=bad_dtype)
        expect_error(["info", "--model", j("dtype")], "encoder.layer_norm.weight", "dtype", label="unknown dtype")

        def drop(h, d):
            del h["encoder.layers.1.final_layer_norm.bias"]
            return h, d
        copy_model(j("good"), j("missing"), st_edit=drop)
        expect_error(["info", "--model", j("missing")], "missing tensor", "encoder.layers.1.final_layer_norm.bias",
                     label="missing key")

        def extra(h, d):
            h["encoder.layers.9.attention.q_proj.bias"] = {"dtype": "F32", "shape": [4], "data_offsets": [len(d), len(d) + 16]}
            return h, d + bytes(16)
        copy_model(j("good"), j("extra"), st_edit=extra)
        expect_error(["info", "--model", j("extra")], "unexpected tensor", "layers.9", label="unexpected tensor")

        copy_model(j("good"), j("heads"), cfg_edit=lambda c: c.update(num_attention_heads=5))
        expect_error(["info", "--model", j("heads")], "config.json", "num_attention_heads", label="inconsistent config")
        copy_model(j("good"), j("typ"), cfg_edit=lambda c: c.update(hidden_size="64"))
        expect_error(["info", "--model", j("typ")], "config.json", "hidden_size", label="config wrong type")
        copy_model(j("good"), j("norm"), cfg_edit=lambda c: c.update(feat_extract_norm="batch"))
        expect_error(["info", "--model", j("norm")], "feat_extract_norm", label="unsupported norm")
        with open(j("good", "config.json")) as f:
            text = f.read()
        os.makedirs(j("badjson"))
        with open(j("badjson", "config.json"), "w") as f:
            f.write(text[:-10])
        expect_error(["info", "--model", j("badjson")], "config.json", "line", label="malformed config.json")
        expect_error(["info", "--model", j("nope")], "nope", label="missing model folder")

        # --- audio ---
        stereo = j("stereo.wav")
        tl.write_wav16(stereo, np.repeat(tl.speechlike(rng, 8000), 2), channels=2)
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), stereo], "stereo.wav", "channel", label="stereo wav")
        low = j("8k.wav")
        tl.write_wav16(low, tl.speechlike(rng, 8000), rate=8000)
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), low], "8k.wav", "8000", label="8 kHz wav")
        empty = j("empty.wav")
        open(empty, "wb").close()
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), empty], "empty.wav", label="empty file")
        text_file = j("notes.wav")
        with open(text_file, "w") as f:
            f.write("this is not audio\n" * 20)
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), text_file], "notes.wav", label="non-audio file")
        short = j("short.wav")
        tl.write_wav16(short, tl.speechlike(rng, 300))
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), short], "short.wav", "400", label="shorter than receptive field")

        # --- a failing run keeps the previous output ---
        keep = j("keep.h5")
        with open(keep, "w") as f:
            f.write("previous result")
        expect_error(["extract", "--model", j("good"), "--out", keep, good, stereo], "stereo.wav", label="failure keeps output")
        with open(keep) as f:
            if f.read() != "previous result":
                print("  FAIL: a failed extract replaced the existing output file")
                failures.append("output clobbered")
        if os.path.exists(keep + ".tmp"):
            print("  FAIL: a failed extract left a temporary file behind")
            failures.append("tmp left")

        # --- command line ---
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), "--layer", "3", good], "did you mean", "--layers",
                     label="misspelt option")
        expect_error(["extract", "--model", j("good"), "--out", j("x.h5"), "--layers", "0,9", good], "--layers", label="bad layer")
        expect_error(["extract", "--model", j("good"), good], "--out", label="missing --out")

    print("test_model_bad_input:", "all cases passed" if not failures else f"{len(failures)} FAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
