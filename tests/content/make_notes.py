"""Generate the labelled synthetic clinical notes in notes.jsonl (run: python -m tests.content.make_notes).

Every identifier is made up here, from a fixed seed, so the file is the same on every run. Each note is a
few sentences from templates; each slot is filled with either a true identifier of a type (counted in
the note's labels) or a near-miss that must not be counted: SSNs in never-issued ranges (000, 666, 9xx,
group 00, serial 0000), order and accession numbers shaped like MRNs but without a record context, NPIs
failing the Luhn check, dates that are not birth dates, numbers that look like phones but cannot be
(area or exchange starting 0 or 1), codes like E11 without a dot or a diagnosis context, street-less
numbers ("Suite 5", "Room 12"), and strings with an @ that are not addresses. MRNs follow the shipped
policy data's patterns (content.mrn_patterns: seven digits, or two letters and six digits). Some true
identifiers are written in ways the detectors are not built for (PO boxes, phones without separators,
"MR#" for a record number), so recall below 1 is measured, not hidden.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("notes.jsonl")
FIRST = ["Maria", "James", "Aisha", "Chen", "Olga", "Pedro", "Fatima", "Liam", "Noor", "Grace"]
LAST = ["Alvarez", "Okafor", "Nguyen", "Smith", "Kowalski", "Haddad", "Brown", "Ito", "Patel", "Silva"]
STREETS = ["Maple Street", "Oak Avenue", "Cedar Road", "Harbor Boulevard", "Pine Lane", "Elm Drive", "Lake Court"]
ICD = ["E11.9", "I10.0", "J45.909", "N18.3", "F32.A", "K21.9", "M54.5", "Z79.4"]
MBI_ALPHA = "ACDEFGHJKMNPQRTUVWXY"


def luhn_digit(partial: str) -> str:
    total = 0
    for i, char in enumerate(reversed(partial)):
        d = int(char)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def npi(rng: random.Random, valid: bool = True) -> str:
    body = rng.choice("12") + "".join(rng.choice("0123456789") for _ in range(8))
    check = luhn_digit("80840" + body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    return body + check


def ssn(rng: random.Random) -> str:
    area = rng.randint(1, 899)
    while area == 666:
        area = rng.randint(1, 899)
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def bad_ssn(rng: random.Random) -> str:
    return rng.choice(
        [
            f"000-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
            f"666-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
            f"9{rng.randint(0, 99):02d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
            f"{rng.randint(1, 665):03d}-00-{rng.randint(1, 9999):04d}",
            f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-0000",
        ]
    )


def mbi(rng: random.Random) -> str:
    def a() -> str:
        return rng.choice(MBI_ALPHA)

    def an() -> str:
        return rng.choice(MBI_ALPHA + "0123456789")

    def n() -> str:
        return rng.choice("0123456789")

    return f"{rng.randint(1, 9)}{a()}{an()}{n()}-{a()}{an()}{n()}-{a()}{a()}{n()}{n()}"


def phone(rng: random.Random) -> str:
    area, exchange = rng.randint(200, 989), rng.randint(200, 999)
    line = rng.randint(0, 9999)
    return rng.choice(
        [f"({area}) {exchange}-{line:04d}", f"{area}-{exchange}-{line:04d}", f"{area}.{exchange}.{line:04d}"]
    )


def note(rng: random.Random) -> dict[str, object]:
    labels: dict[str, int] = {}
    parts: list[str] = []

    def add(kind: str | None, text: str) -> None:
        parts.append(text)
        if kind:
            labels[kind] = labels.get(kind, 0) + 1

    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    add(None, f"Patient {name} seen in clinic today for follow-up.")
    for _ in range(rng.randint(2, 6)):
        pick = rng.randrange(22)
        if pick == 0:
            add("ssn", f"SSN {ssn(rng)} on file.")
        elif pick == 1:
            add(None, f"Old form lists {bad_ssn(rng)} which is not a valid SSN.")
        elif pick == 2:
            add("mrn", f"MRN: {rng.randint(1000000, 9999999)}.")
        elif pick == 3:
            letters = rng.choice("ABCDEFGH") + rng.choice("ABCDEFGH")
            add("mrn", f"Medical record number {letters}{rng.randint(100000, 999999)} confirmed.")
        elif pick == 4:
            add(
                None,
                f"Order #{rng.randint(1000000, 9999999)} sent to the lab; accession {rng.randint(1000000, 9999999)}.",
            )
        elif pick == 5:
            add("npi", f"Referring provider NPI {npi(rng)}.")
        elif pick == 6:
            add(None, f"Fax batch {npi(rng, valid=False)} queued.")
        elif pick == 7:
            add("mbi", f"Medicare ID {mbi(rng)}.")
        elif pick == 8:
            add("dob", f"DOB: {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1930, 2005)}.")
        elif pick == 9:
            add(None, f"Admitted on {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2026 for observation.")
        elif pick == 10:
            add("phone", f"Call back at {phone(rng)}.")
        elif pick == 11:
            fake = f"123-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
            add(None, f"Reference {fake} and extension 0{rng.randint(10, 99)}-555-0100.")
        elif pick == 12:
            add("email", f"Daughter's email {rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@example.org.")
        elif pick == 13:
            add(None, "Reply to the @clinic handle, not an address.")
        elif pick == 14:
            add("address", f"Lives at {rng.randint(1, 9999)} {rng.choice(STREETS)}.")
        elif pick == 15:
            add(None, f"Seen in Suite {rng.randint(1, 30)}, Room {rng.randint(1, 400)}.")
        elif pick == 16:
            add("icd10", f"Assessment: {rng.choice(ICD)}.")
        elif pick == 18:  # the harder cases a person would label, which the detectors are not built to catch
            add("address", f"Mail goes to PO Box {rng.randint(10, 9999)}.")
        elif pick == 19:
            add("phone", f"Mobile {rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d} preferred.")
        elif pick == 20:
            add("mrn", f"MR# {rng.randint(1000000, 9999999)} merged.")
        elif pick == 21:
            add("dob", f"dob {rng.randint(1, 12)}-{rng.randint(1, 28)}-{rng.randint(30, 99)}.")
        else:
            add(None, f"Lab panel E{rng.randint(10, 99)} and vitamin B{rng.randint(1, 12)} ordered.")
    add(None, "Plan discussed; return in three months.")
    return {"text": " ".join(parts), "labels": labels}


def main() -> None:
    rng = random.Random(20261129)
    with OUT.open("w", encoding="utf-8") as out:
        for _ in range(400):
            out.write(json.dumps(note(rng)) + "\n")


if __name__ == "__main__":
    main()
