"""HL7 v2 ADT bench inputs: the golden A04 (typical) and a large A04.

"Large" is the most this adapter accepts in one message: 49 NK1 segments (the canonical
model's 50-person limit, with the child), each with a name, a relationship, an address and
two phone numbers, and a PID-3 list of 50 repetitions (the adapter's repetition limit: one
NHS number and 49 hospital numbers, which are read and dropped). About 7 KB of ER7.
"""

from __future__ import annotations

from pathlib import Path

from adapters.hl7v2 import MAX_NK1, MAX_REPETITIONS, Hl7v2Adapter
from bench.adapter_cases import BenchCase

_GOLDEN = Path(__file__).resolve().parent.parent.parent / "tests" / "adapters" / "golden" / "hl7v2"
_RELATIONSHIPS = ("MTH", "FTH", "GRD", "SIS", "OAD", "CGV")


def _typical() -> bytes:
    return (_GOLDEN / "a04-ed-attendance.hl7").read_text().replace("\n", "\r").encode()


def _large() -> bytes:
    lines = (_GOLDEN / "a04-ed-attendance.hl7").read_text().splitlines()
    hospital_numbers = "~".join(f"RX{n:06d}^^^ZZZ98^MR" for n in range(MAX_REPETITIONS - 1))
    out: list[str] = []
    for original in lines:
        line = original
        if line.startswith("PID|"):
            fields = line.split("|")
            fields[3] = f"9990001014^^^NHS^NH~{hospital_numbers}"
            line = "|".join(fields)
        if line.startswith("NK1|"):
            continue
        out.append(line)
        if line.startswith("PD1"):
            out.extend(
                f"NK1|{n}|Testcase^Relative{n}^^^^^L|{_RELATIONSHIPS[n % len(_RELATIONSHIPS)]}"
                f"|{n} Example Street^^Testtown^^ZZ99 {n % 10}ZZ^GBR^H"
                f"|07700 9{n:05d}^PRN^PH~01632 9{n:05d}^PRN^PH"
                for n in range(1, MAX_NK1 + 1)
            )
    return "\r".join(out).encode() + b"\r"


CASES = [
    BenchCase(
        name="hl7v2 (ADT A04)",
        adapter=Hl7v2Adapter(),
        typical=_typical(),
        large=_large(),
        large_note=f"A04 with {MAX_NK1} NK1 and a {MAX_REPETITIONS}-repetition PID-3",
    )
]
