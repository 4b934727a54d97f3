#!/usr/bin/env bash
# fuzz/seed.sh — fills fuzz/corpus/validate/ with the workflows CoreFlow already has: the
# examples, and every workflow written in a test (string literals holding `jobs`), one
# file each. Run it from any directory before `cargo fuzz run validate`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/validate
mkdir -p "$out"
cp examples/*.yaml "$out"/
python3 - "$out" tests/cli/*.rs src/spec/*.rs <<'PY'
import hashlib, pathlib, re, sys

out = pathlib.Path(sys.argv[1])
raw = re.compile(r'r(#*)"(.*?)"\1', re.S)
plain = re.compile(r'(?<![r#\w])"((?:[^"\\]|\\.)*)"', re.S)
escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "'": "'", "\\": "\\"}


def unescape(text):
    def one(m):
        s = m.group(0)
        if s.startswith("\\u{"):
            return chr(int(s[3:-1], 16))
        if s.startswith("\\x"):
            return chr(int(s[2:], 16))
        if s.startswith("\\\n"):
            return ""
        return escapes.get(s[1], s)

    return re.sub(r'\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\\n\s*|\\.', one, text)


count = 0
for path in sys.argv[2:]:
    source = pathlib.Path(path).read_text()
    found = [m.group(2) for m in raw.finditer(source)]
    found += [unescape(m.group(1)) for m in plain.finditer(raw.sub("", source))]
    for text in found:
        if "jobs" not in text or len(text) < 10:
            continue
        name = hashlib.sha1(text.encode()).hexdigest()[:16]
        (out / f"test-{name}.yaml").write_text(text)
        count += 1
print(f"{count} workflows from the tests", file=sys.stderr)
PY
echo "$(ls "$out" | wc -l) files in $out" >&2
