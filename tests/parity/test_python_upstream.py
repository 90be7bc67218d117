#!/usr/bin/python3
"""The Python package (python/hubert_c: ctypes over libhubert's C API, eval/hubert_capi.h).

  1. UpstreamExpert(model)(list of 1-D float32 arrays) returns NL + 1 hidden states (B, T, H),
     T = frames of the longest waveform, equal to `hubert extract --batch-size 1` for each
     utterance (rel. err < 1e-6: the same C code on the same input; differences come only from
     OpenMP reduction order) and zero after each utterance's own frames; last_hidden_state is the
     last of them; get_downsample_rates() == 320;
  2. batched=True equals `hubert extract --batch-size B` (one zero-padded batch);
  3. errors: a waveform shorter than the receptive field, a missing model folder -> HubertError
     naming the problem;
  4. `pip install --no-deps --no-build-isolation ./python` into a fresh venv
     (/usr/bin/python3 -m venv --system-site-packages), offline; the installed package finds
     libhubert through the path recorded at install time (HUBERT_LIB unset) and gives the same
     arrays. Skipped with a message if venv or pip are unavailable.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubert_testlib as tl  # noqa: E402

TOL = 1e-6
SRC = os.path.abspath(os.environ.get("HUBERT_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
failures = []


def check(ok, what):
    print(("  ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def read_extract(path):
    import h5py
    with h5py.File(path, "r") as f:
        off = f["offsets"][:]
        n = sum(1 for k in f.keys() if k.startswith("layer_"))
        return off, [f[f"layer_{i}"][:] for i in range(n)]


def compare(out, off, layers, waves, what):
    hs = out["hidden_states"]
    B, T = len(waves), int(max(off[1:] - off[:-1]))
    ok_shape = len(hs) == len(layers) and all(h.shape == (B, T, layers[0].shape[1]) and h.dtype == np.float32 for h in hs)
    check(ok_shape, f"{what}: {len(hs)} hidden states of shape {hs[0].shape} float32 (want {len(layers)} x {(B, T, layers[0].shape[1])})")
    if not ok_shape:
        return
    worst, pad = 0.0, 0.0
    for b in range(B):
        n = off[b + 1] - off[b]
        for i in range(len(layers)):
            worst = max(worst, tl.rel_err(hs[i][b, :n], layers[i][off[b]:off[b + 1]]))
            pad = max(pad, float(np.abs(hs[i][b, n:]).max()) if n < T else 0.0)
    check(worst < TOL, f"{what}: max rel err vs hubert extract {worst:.3e} (tol {TOL})")
    check(pad == 0.0, f"{what}: frames after each utterance's length are zero (max |x| {pad})")
    check(out["last_hidden_state"] is hs[-1] or np.array_equal(out["last_hidden_state"], hs[-1]), f"{what}: last_hidden_state == hidden_states[-1]")


def main():
    seed = tl.test_seed()
    rng = np.random.default_rng(seed)
    lib = os.environ.get("HUBERT_LIB")
    if not lib or not os.path.isfile(lib):
        print("HUBERT_LIB must name libhubert.so")
        sys.exit(1)
    sys.path.insert(0, os.path.join(SRC, "python"))
    import hubert_c
    from hubert_c import HubertError, UpstreamExpert

    with tempfile.TemporaryDirectory() as t:
        os.chdir(t)
        tl.run(["init", "--config", "tiny", "--out", "m", "--seed", str(seed % 100000)])
        waves = []
        with open("u.tsv", "w") as f:
            f.write(t + "\n")
            for i in range(3):
                n = int(rng.integers(4000, 24000))
                x = tl.speechlike(rng, n)
                tl.write_wav16(f"u{i}.wav", x)
                f.write(f"u{i}.wav\t{n}\n")
                waves.append(x.astype(np.float32) / 32768.0)
        print("lengths", [len(w) for w in waves])
        tl.run(["extract", "--model", "m", "--out", "one.h5", "u.tsv"])
        tl.run(["extract", "--model", "m", "--out", "batch.h5", "--batch-size", "3", "u.tsv"])
        off, layers = read_extract("one.h5")
        offb, layersb = read_extract("batch.h5")

        up = UpstreamExpert("m")
        check(up.get_downsample_rates("hidden_states") == 320, f"get_downsample_rates() == {up.get_downsample_rates('hidden_states')}")
        out = up(waves)
        compare(out, off, layers, waves, "UpstreamExpert")
        check(list(out["frame_lengths"]) == list(off[1:] - off[:-1]), f"frame_lengths {list(out['frame_lengths'])}")
        compare(UpstreamExpert("m", batched=True)(waves), offb, layersb, waves, "UpstreamExpert(batched=True)")
        single = hubert_c.Model("m").forward(waves[1])
        check(single.shape[0] == len(layers) and tl.rel_err(single[2], layers[2][off[1]:off[2]]) < TOL,
              f"Model.forward: (NL+1, T, H) = {single.shape}")

        for what, fn, needle in [
            ("too-short waveform", lambda: up([np.zeros(100, np.float32)]), "receptive field"),
            ("missing model folder", lambda: UpstreamExpert(os.path.join(t, "nope")), "nope"),
            ("2-D waveform", lambda: hubert_c.Model("m").forward(np.zeros((2, 1000))), "1-D"),
        ]:
            try:
                fn()
                check(False, f"{what}: no error")
            except (HubertError, ValueError) as e:
                check(needle in str(e), f"{what} -> {type(e).__name__}: {e}")

        # pip install into a fresh venv, offline, then use it without HUBERT_LIB.
        venv = os.path.join(t, "venv")
        p = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], capture_output=True, text=True)
        vpy = os.path.join(venv, "bin", "python")
        if p.returncode != 0 or subprocess.run([vpy, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            print("SKIPPED pip-install check: venv/pip unavailable: " + (p.stderr or "").strip()[-300:])
        else:
            pkg = os.path.join(t, "pkg")
            shutil.copytree(os.path.join(SRC, "python"), pkg, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
            p = subprocess.run([vpy, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", pkg],
                               capture_output=True, text=True, env=env, timeout=300)
            check(p.returncode == 0, "pip install --no-deps --no-build-isolation ./python (offline) " +
                  ("succeeded" if p.returncode == 0 else "failed: " + (p.stderr or p.stdout).strip()[-800:]))
            if p.returncode == 0:
                np.savez("w.npz", *waves)
                code = ("import hubert_c, numpy as np, sys; w = np.load('w.npz'); "
                        "o = hubert_c.UpstreamExpert('m')([w[k] for k in sorted(w.files, key=lambda s: int(s[4:]))]); "
                        "np.savez('venv_out.npz', *o['hidden_states']); print(hubert_c.__file__)")
                env2 = {k: v for k, v in os.environ.items() if k not in ("HUBERT_LIB", "PYTHONPATH")}
                q = subprocess.run([vpy, "-c", code], capture_output=True, text=True, env=env2, cwd=t)
                ok = q.returncode == 0
                check(ok and q.stdout.strip().startswith(venv), "installed package imports from the venv and finds libhubert "
                      "without HUBERT_LIB: " + (q.stdout.strip() if ok else q.stderr.strip()[-800:]))
                if ok:
                    v = np.load("venv_out.npz")
                    hs = [v[f"arr_{i}"] for i in range(len(layers))]
                    compare({"hidden_states": hs, "last_hidden_state": hs[-1]}, off, layers, waves, "installed UpstreamExpert")
        os.chdir("/")
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("all python upstream checks passed")


if __name__ == "__main__":
    main()
