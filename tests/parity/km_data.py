"""Helpers for the k-means/LDA tests: synthetic MFCC-like features and hubert feature files."""
import numpy as np


def mfcc_like(rng, n_utts, frames, dim=39, n_states=60):
    """Frames from a hidden Markov chain of `n_states` Gaussian states with correlated dims,
    smoothed in time like real cepstra. Returns a list of (T, dim) float32 arrays."""
    means = rng.normal(0, 3.0, (n_states, dim)) * np.linspace(1.5, 0.3, dim)
    mix = rng.normal(0, 0.3, (dim, dim)) + np.eye(dim)
    out = []
    for _ in range(n_utts):
        T = int(rng.integers(frames // 2, frames * 3 // 2))
        s, states = int(rng.integers(n_states)), []
        while len(states) < T:
            states += [s] * int(rng.integers(3, 12))
            s = int(rng.integers(n_states))
        x = means[states[:T]] + rng.normal(0, 1.0, (T, dim)) @ mix
        x[1:] = 0.7 * x[1:] + 0.3 * x[:-1]
        out.append(x.astype(np.float32))
    return out


def write_feats(path, utts, kind="mfcc", rate=100.0, name="feats", ids=None):
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "hubert-features"
        f.attrs["version"] = np.int32(1)
        f.attrs["kind"] = kind
        f.attrs["rate"] = float(rate)
        f.attrs["sample_rate"] = np.int32(16000)
        f.attrs["num_utts"] = np.int64(len(utts))
        ids = ids or ["utt%05d" % i for i in range(len(utts))]
        f.create_dataset("utt_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        off = np.zeros(len(utts) + 1, np.int64)
        off[1:] = np.cumsum([len(u) for u in utts])
        f.create_dataset("offsets", data=off)
        f.create_dataset(name, data=np.concatenate(utts).astype(np.float32))
