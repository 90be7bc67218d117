#!/usr/bin/python3
"""Builds the demo corpus from unpacked Debian data packages (see data_prep/demo_corpus.sh).

Every choice is a pure function of (seed, name) through SHA-256, so the corpus is byte-identical
across runs and Python versions; audio is converted with `sox -R` (no dither randomness).
Outputs: OUT/wav/<utt_id>.wav (16 kHz mono int16), OUT/{train,valid,test}.tsv (fairseq
manifests), OUT/meta.tsv, OUT/.stamp (options hash: an identical rerun does nothing).
Only the Python standard library is used.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor

VERSION = 2
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
AST_VOICES = [("en", "en_US_f_Allison", "Allison"), ("es", "es_MX_f_Allison", "Allison"),
              ("fr", "fr_CA_f_June", "June"), ("it", "it_IT_m_Carlo", "Carlo"),
              ("ru", "ru_RU_f_IvrvoiceRU", "IvrvoiceRU")]
ESPEAK_LANGS = ["bg", "cs", "de", "en", "es", "fr", "it", "nl", "pl", "ru", "sv"]
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5"]
FLITE_VOICES = ["kal16", "awb", "rms", "slt"]
META_COLS = ["utt_id", "split", "speaker", "language", "source", "keyword", "text", "phones"]


def h(seed, *parts):
    """Deterministic 64-bit hash of (seed, parts): the corpus's only source of randomness."""
    s = "\x1f".join([str(seed)] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little")


def hu(seed, *parts):
    return h(seed, *parts) / 2.0 ** 64


def pick(seed, tag, items, n, key=lambda x: x):
    return sorted(items, key=lambda x: h(seed, tag, key(x)))[:max(0, n)]


def scaled(base, scale, lo, hi=None):
    n = max(lo, int(round(base * scale)))
    return min(n, hi) if hi is not None else n


def clean(text):
    return re.sub(r"\s+", " ", text.replace("\t", " ")).strip()


def safe_id(s):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", s)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(cmd[:4]), r.returncode,
                                                        r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode(errors="replace")


def sox_convert(src, dst, effects=()):
    tmp = dst + ".tmp.wav"
    run(["sox", "-R", "-q", src, "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", tmp]
        + list(effects))
    os.replace(tmp, dst)


def wav_samples(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise RuntimeError("%s: not 16 kHz mono int16" % path)
        return w.getnframes()


# ---- sources --------------------------------------------------------------------------------
def read_asterisk_text(root, lang):
    path = os.path.join(root, "usr/share/doc/asterisk-core-sounds-%s/core-sounds-%s.txt.gz" % (lang, lang))
    out = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            v = clean(v)
            if v and not v.startswith("["):
                out[k.strip()] = v
    return out


LUA_RE = re.compile(r'dialogId\("([^"]*)",\s*"([^"]*)",\s*"((?:[^"\\]|\\.)*)"\)'
                    r'(?:\s*dialogStr\("((?:[^"\\]|\\.)*)"\))?', re.S)


def lua_unescape(s):
    return clean(s.replace('\\"', '"').replace("\\n", " ").replace("\\'", "'").replace("\\\\", "\\"))


def read_fillets(root, lang):
    """[(level, id, actor, text_in_lang)] for lines of the two main actors."""
    sdir = os.path.join(root, "usr/share/games/fillets-ng/script")
    out = []
    for level in sorted(os.listdir(sdir)):
        f = os.path.join(sdir, level, "dialogs_%s.lua" % lang)
        if not os.path.isfile(f):
            continue
        with open(f, encoding="utf-8", errors="replace") as fh:
            for m in LUA_RE.finditer(fh.read()):
                did, font, en, tr = m.group(1), m.group(2), m.group(3), m.group(4)
                text = lua_unescape(en if lang == "en" else (tr or ""))
                if text and font in ("font_small", "font_big"):
                    out.append((level, did, font[5:], text))
    return out


def plan(args):
    """Returns the list of jobs (dicts); nothing is written yet."""
    # The base counts below give ~34 minutes; 1.32 calibrates --minutes to the measured total.
    root, seed, s = args.root, args.seed, args.minutes / 45.0 * 1.32
    jobs = []

    def add(**kw):
        kw["utt_id"] = safe_id(kw["utt_id"])
        kw.setdefault("keyword", "")
        kw.setdefault("phones", "")
        jobs.append(kw)

    # Asterisk prompts + real digits (telephone band, 8 kHz upsampled).
    snd = os.path.join(root, "usr/share/asterisk/sounds")
    for lang, vdir, spk in AST_VOICES:
        text = read_asterisk_text(root, lang)
        prompts = [k for k, v in text.items() if "/" not in k and 8 <= len(v) <= 160
                   and os.path.isfile(os.path.join(snd, vdir, k + ".wav"))]
        for k in pick(seed, "ast", prompts, scaled(45, s, 2)):
            add(utt_id="ast-%s-%s-%s" % (lang, spk, k), src=os.path.join(snd, vdir, k + ".wav"),
                kind="file", speaker="ast-" + spk, language=lang, source="asterisk", text=text[k])
        digits = [str(d) for d in range(10) if os.path.isfile(os.path.join(snd, vdir, "digits/%d.wav" % d))]
        for d in pick(seed, "astdig", digits, scaled(10, s, 1)):
            add(utt_id="ast-%s-%s-digit%s" % (lang, spk, d), src=os.path.join(snd, vdir, "digits/%s.wav" % d),
                kind="file", speaker="ast-" + spk, language=lang, source="asterisk-digits",
                text=text.get("digits/" + d, ""), keyword=KEYWORDS[10 + int(d)])

    # fillets-ng acted dialogue (two actors per language).
    fsnd = os.path.join(root, "usr/share/games/fillets-ng/sound")
    for lang in ("cs", "nl"):
        lines = [x for x in read_fillets(root, lang)
                 if os.path.isfile(os.path.join(fsnd, x[0], lang, x[1] + ".ogg")) and len(x[3]) >= 8]
        for actor in ("small", "big"):
            mine = {(x[0], x[1]): x for x in lines if x[2] == actor}
            for key in pick(seed, "fil", list(mine), scaled(35, s, 3), key=lambda k: "/".join(k)):
                level, did, _, text = mine[key]
                add(utt_id="fil-%s-%s-%s" % (lang, level, did), src=os.path.join(fsnd, level, lang, did + ".ogg"),
                    kind="file", speaker="fil-%s-%s" % (lang, actor), language=lang, source="fillets", text=text)

    # pocketsphinx test data: two English read-speech speakers.
    pdir = os.path.join(root, "usr/share/pocketsphinx/test/data")
    for sub, tfile in (("librivox", "transcription"), ("cards", "cards.transcription")):
        trans = {}
        tp = os.path.join(pdir, sub, tfile)
        if os.path.isfile(tp):
            for line in open(tp, encoding="utf-8", errors="replace"):
                m = re.match(r"\s*(.*?)\s*\(([^()]+)\)\s*$", line)
                if m:
                    trans[m.group(2)] = clean(m.group(1).replace("<s>", "").replace("</s>", ""))
        ids = [k for k in trans if os.path.isfile(os.path.join(pdir, sub, k + ".wav"))]
        for k in pick(seed, "ps", ids, scaled(len(ids), s * 4, 3, len(ids))):
            add(utt_id="ps-%s-%s" % (sub, k), src=os.path.join(pdir, sub, k + ".wav"), kind="file",
                speaker="ps-" + sub, language="en", source="pocketsphinx", text=trans[k])

    # espeak-ng sentences in 11 languages (fillets text), voice variants round-robin.
    per_lang = scaled(12, s, 1)
    n_esp = per_lang * len(ESPEAK_LANGS)
    variants = pick(seed, "espv", ESPEAK_VARIANTS, max(1, min(len(ESPEAK_VARIANTS), n_esp // 3)))
    i = 0
    for lang in ESPEAK_LANGS:
        lines = [x for x in read_fillets(root, lang) if 20 <= len(x[3]) <= 150]
        for level, did, _, text in pick(seed, "esp" + lang, lines, per_lang, key=lambda x: x[0] + "/" + x[1]):
            v = variants[i % len(variants)]
            i += 1
            add(utt_id="esp-%s-%s-%s" % (lang, v, did), kind="espeak", voice="%s+%s" % (lang, v),
                pitch=35 + int(30 * hu(seed, "espp", did, lang)), speed=150 + int(30 * hu(seed, "esps", did, lang)),
                speaker="espeak-" + v, language=lang, source="espeak", text=text)

    # flite sentences with aligned phones (English fillets text).
    en_lines = [x for x in read_fillets(root, "en") if 20 <= len(x[3]) <= 150]
    n_fl = scaled(40, s, 3)
    fvoices = pick(seed, "flv", FLITE_VOICES, max(1, min(len(FLITE_VOICES), n_fl // 3)))
    for j, (level, did, _, text) in enumerate(pick(seed, "fl", en_lines, n_fl, key=lambda x: x[0] + "/" + x[1])):
        v = fvoices[j % len(fvoices)]
        add(utt_id="flite-%s-%s" % (v, did), kind="flite", voice=v,
            stretch=0.9 + 0.25 * hu(seed, "fls", did), cents=0,
            speaker="flite-" + v, language="en", source="flite", text=text)

    # Synthetic keywords: every synthetic voice x 20 words, pitch/speed jitter.
    voices = [("espeak", "en+" + v) for v in ESPEAK_VARIANTS] + [("flite", v) for v in FLITE_VOICES]
    pairs = [(kind, v, w) for kind, v in voices for w in KEYWORDS]
    n_kw = scaled(len(pairs), s, 9)
    nv = max(1, min(len(voices), n_kw // 3))
    kv = pick(seed, "kwv", voices, nv, key=lambda x: x[1])
    per_v = max(1, n_kw // nv)
    for kind, v in kv:
        for w in pick(seed, "kw" + v, KEYWORDS, per_v):
            vid = v.replace("en+", "")
            spk = ("espeak-" if kind == "espeak" else "flite-") + vid
            common = dict(utt_id="kw-%s-%s" % (vid, w), speaker=spk, language="en", source="keyword-" + kind,
                          text=w, keyword=w)
            if kind == "espeak":
                add(kind="espeak", voice=v, pitch=25 + int(50 * hu(seed, "kwp", v, w)),
                    speed=130 + int(60 * hu(seed, "kws", v, w)), **common)
            else:
                add(kind="flite", voice=v, stretch=0.85 + 0.35 * hu(seed, "kws", v, w),
                    cents=int(-200 + 400 * hu(seed, "kwp", v, w)), **common)
    seen = set()
    for j in jobs:
        if j["utt_id"] in seen:
            raise RuntimeError("duplicate utterance id %s" % j["utt_id"])
        seen.add(j["utt_id"])
    return jobs


def make(job, wavdir):
    dst = os.path.join(wavdir, job["utt_id"] + ".wav")
    if job["kind"] == "file":
        sox_convert(job["src"], dst)
    elif job["kind"] == "espeak":
        with tempfile.TemporaryDirectory() as td:
            raw = os.path.join(td, "x.wav")
            out = run(["espeak-ng", "-v", job["voice"], "-p", str(job["pitch"]), "-s", str(job["speed"]),
                       "-x", "--sep= ", "-w", raw], input=job["text"].encode())
            sox_convert(raw, dst)
        job["phones"] = " ".join(out.split())
    else:
        with tempfile.TemporaryDirectory() as td:
            raw = os.path.join(td, "x.wav")
            out = run(["flite", "-voice", job["voice"], "--setf", "duration_stretch=%.3f" % job["stretch"],
                       "-psdur", "-t", job["text"], "-o", raw])
            sox_convert(raw, dst, ["pitch", str(job["cents"])] if job["cents"] else [])
        job["phones"] = " ".join(out.split())
    job["samples"] = wav_samples(dst)
    return job


def split_jobs(jobs, seed):
    """Per speaker, a seeded order: ~80/10/10 with at least one valid and one test utterance."""
    by_spk = {}
    for j in jobs:
        by_spk.setdefault(j["speaker"], []).append(j)
    for spk, js in by_spk.items():
        js.sort(key=lambda j: h(seed, "split", j["utt_id"]))
        n = len(js)
        nv = max(1, int(round(0.1 * n))) if n >= 3 else 0
        nt = nv
        for i, j in enumerate(js):
            j["split"] = "valid" if i < nv else "test" if i < nv + nt else "train"


def write_atomic(path, text):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, help="folder with the unpacked .deb files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    if args.minutes <= 0:
        sys.exit("demo_corpus: --minutes must be > 0")
    out = os.path.abspath(args.out)
    wavdir = os.path.join(out, "wav")
    stamp = json.dumps({"version": VERSION, "minutes": args.minutes, "seed": args.seed}, sort_keys=True)
    stamp_path = os.path.join(out, ".stamp")
    if os.path.isfile(stamp_path) and open(stamp_path).read() == stamp and all(
            os.path.isfile(os.path.join(out, f)) for f in ("train.tsv", "valid.tsv", "test.tsv", "meta.tsv")):
        print("demo corpus %s is up to date (%s)" % (out, stamp))
        summary(out)
        return
    jobs = plan(args)
    os.makedirs(wavdir, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        done = list(ex.map(lambda j: make(j, wavdir), jobs))
    keep = {j["utt_id"] + ".wav" for j in done}
    for f in os.listdir(wavdir):   # drop files from an earlier, different build
        if f not in keep:
            os.remove(os.path.join(wavdir, f))
    split_jobs(done, args.seed)
    done.sort(key=lambda j: j["utt_id"])
    for sp in ("train", "valid", "test"):
        lines = [wavdir] + ["%s.wav\t%d" % (j["utt_id"], j["samples"]) for j in done if j["split"] == sp]
        write_atomic(os.path.join(out, sp + ".tsv"), "\n".join(lines) + "\n")
    rows = ["\t".join(META_COLS)] + ["\t".join(clean(str(j.get(c, ""))) for c in META_COLS) for j in done]
    write_atomic(os.path.join(out, "meta.tsv"), "\n".join(rows) + "\n")
    write_atomic(stamp_path, stamp)
    summary(out)


def summary(out):
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "meta.tsv"), encoding="utf-8")][1:]
    samples = {}
    for sp in ("train", "valid", "test"):
        for l in open(os.path.join(out, sp + ".tsv"), encoding="utf-8").read().splitlines()[1:]:
            rel, n = l.split("\t")
            samples[rel[:-4]] = int(n)
    mins = sum(samples.values()) / 16000.0 / 60.0
    real = sum(samples[r[0]] for r in rows if r[4] in ("asterisk", "asterisk-digits", "fillets", "pocketsphinx"))
    print("demo corpus %s: %d utterances, %.1f minutes (%.1f real, %.1f synthetic), %d speakers, %d languages"
          % (out, len(rows), mins, real / 16000 / 60, mins - real / 16000 / 60,
             len({r[2] for r in rows}), len({r[3] for r in rows})))
    for sp in ("train", "valid", "test"):
        print("  %-5s %4d utterances" % (sp, sum(1 for r in rows if r[1] == sp)))


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as e:
        sys.exit("demo_corpus: %s" % e)
