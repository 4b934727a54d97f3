#!/usr/bin/env python3
"""Run a command and report its wall time and peak resident memory.

    measure.py OUTFILE CMD [ARG…]

Writes one line `WALL_SECONDS PEAK_KB EXIT_CODE` to OUTFILE and exits with the command's
exit code (128+N when it died from signal N). The command's stdin, stdout and stderr are
inherited. The peak is ru_maxrss from wait4(): the largest resident set of the command or
of any descendant it waited for — the same figure GNU `time -v` reports. Used by
bench/lib.sh when /usr/bin/time is missing (or BENCH_TIMER=python).
"""
import os
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: measure.py OUTFILE CMD [ARG...]")
    outfile, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as e:
        sys.exit(f"measure.py: cannot start {argv[0]}: {e}")
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    with open(outfile, "w") as f:
        # ru_maxrss is in kilobytes on Linux.
        f.write(f"{wall:.4f} {usage.ru_maxrss} {code}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
