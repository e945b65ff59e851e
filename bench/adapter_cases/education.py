"""Education formats: the Common Transfer File (CTF) XML and the suspension/exclusion and
attendance concern JSON notifications.

Bodies are built here, synthetic throughout (fictional schools 801/2000 and 801/4001, UPNs
with check letters computed by ``python-stdnum``, ZZ99 postcodes). The CTF case is the one
whose large body carries many messages: a file of 30 pupils, read with
``CtfAdapter.parse_batch`` (``parse`` takes a file of exactly one pupil and refuses this
body with ``single-message``), so the benchmark times ``parse_batch`` for it and
``render`` for each of the 30 messages.
"""

from __future__ import annotations

import json
from typing import Any

from stdnum.gb import upn as stdnum_upn

from adapters.ctf import CtfAdapter
from adapters.education import AttendanceConcernAdapter, ExclusionAdapter
from bench.adapter_cases import BenchCase

_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<CTfile>
  <Header>
    <DocumentName>Common Transfer File</DocumentName>
    <CTFversion>24.0</CTFversion>
    <DateTime>2026-07-15T10:15:00</DateTime>
    <DocumentQualifier>full</DocumentQualifier>
    <SupplierID>Demo MIS</SupplierID>
    <SourceSchool><LEA>801</LEA><Estab>2000</Estab><URN>999001</URN>
      <SchoolName>Riverside Primary (demo)</SchoolName></SourceSchool>
    <DestSchool><LEA>801</LEA><Estab>4001</Estab><URN>999002</URN></DestSchool>
  </Header>
  <CTFpupilData>
"""
# A pupil as a primary school's MIS exports one: identity, looked-after flag, SEN history,
# address, phone, two contacts, a year of attendance, and assessments outside the subset.
_PUPIL = """    <Pupil>
      <UPN>{upn}</UPN>
      <Surname>Testcase</Surname>
      <Forename>Pupil{n}</Forename>
      <DOB>2015-03-14</DOB>
      <Sex>{sex}</Sex>
      <BasicDetails><NCyearActual>6</NCyearActual><Ethnicity>REFU</Ethnicity></BasicDetails>
      <LookedAfter><InCare>{in_care}</InCare><CareAuthority>801</CareAuthority></LookedAfter>
      <SENhistory>
        <SEN><StartDate>2023-09-04</StartDate><SENprovision>K</SENprovision></SEN>
        <SENneeds><SENneed><SENtypeRank>1</SENtypeRank><SENtype>SLCN</SENtype></SENneed></SENneeds>
      </SENhistory>
      <Address>
        <BS7666Address><PAON>{n}</PAON><Street>Example Street</Street><Town>Testtown</Town></BS7666Address>
        <PostCode>ZZ99 1ZZ</PostCode>
      </Address>
      <Phones><Phone><TelephoneType>H</TelephoneType><PhoneNo>01632 960{n:03d}</PhoneNo></Phone></Phones>
      <Contacts>
        <Contact><Order>1</Order><Surname>Testcase</Surname><Forename>Parent{n}</Forename>
          <Relationship>PAM</Relationship><Responsibility>true</Responsibility>
          <Phones><Phone><TelephoneType>M</TelephoneType><PhoneNo>07700 900{n:03d}</PhoneNo></Phone></Phones>
          <Email>parent{n}@example.invalid</Email></Contact>
        <Contact><Order>2</Order><Surname>Example</Surname><Forename>Carer{n}</Forename>
          <Relationship>CAR</Relationship></Contact>
      </Contacts>
      <Attendance><YearData><Year>2025</Year><LEA>801</LEA><Estab>2000</Estab>
        <SessionsPossible>380</SessionsPossible><SessionsAuthorised>12</SessionsAuthorised>
        <SessionsUnauthorised>4</SessionsUnauthorised></YearData></Attendance>
      <StageAssessments><KeyStage><Stage>KS1</Stage></KeyStage></StageAssessments>
    </Pupil>
"""
_FOOTER = "  </CTFpupilData>\n</CTfile>\n"


def _upn(serial: int) -> str:
    body = f"801200005{serial:03d}"
    return str(stdnum_upn.calc_check_digit(body)) + body


def ctf(pupils: int) -> bytes:
    """A CTF of ``pupils`` pupils (at most 999: the UPN serial is three digits)."""
    body = "".join(
        _PUPIL.format(upn=_upn(n), n=n, sex="FM"[n % 2], in_care="true" if n % 7 == 0 else "false")
        for n in range(1, pupils + 1)
    )
    return (_HEADER + body + _FOOTER).encode()


_PUPIL_JSON: dict[str, Any] = {
    "upn": _upn(1),
    "nhs_number": "9990000018",
    "given_name": "Sam",
    "family_name": "Testcase",
    "birth_date": "2015-03-14",
    "sex": "female",
}
_SUSPENSION: dict[str, Any] = {
    "notification_id": "RPS-DEMO-SUS-0101",
    "kind": "suspension",
    "decided_at": "2026-11-19T12:00:00+00:00",
    "pupil": _PUPIL_JSON,
    "exclusion": {"start_date": "2026-11-20", "days": 2, "reason": "PD", "school_urn": "999001"},
    "social_care": {"has_social_worker": True, "looked_after": True},
    "recipients": ["csc-northshire", "virtual-school-northshire"],
}
# The largest notification the schema allows: every text at its maximum length, ten recipients.
_SUSPENSION_LARGE: dict[str, Any] = {
    **_SUSPENSION,
    "notification_id": "R" * 100,
    "pupil": {**_PUPIL_JSON, "given_name": "G" * 200, "family_name": "F" * 200},
    "exclusion": {**_SUSPENSION["exclusion"], "school_name": "S" * 100},
    "recipients": [f"partner-{i}" for i in range(10)],
}
_ATTENDANCE: dict[str, Any] = {
    "notification_id": "RPS-DEMO-ATT-0103",
    "raised_at": "2026-11-21T09:05:00+00:00",
    "pupil": _PUPIL_JSON,
    "home_address": {"lines": ["2 Example Street", "Testtown"], "postcode": "ZZ99 3ZZ"},
    "attendance": {
        "period_start": "2026-09-03",
        "period_end": "2026-11-20",
        "sessions_possible": 110,
        "sessions_missed": 61,
        "attendance_percent": 44.5,
        "persistent_absence": True,
        "severe_absence": True,
    },
    "concern": "Demo: not seen since 10 November; home visit unanswered twice.",
    "recipients": ["csc-northshire"],
}
_ATTENDANCE_LARGE: dict[str, Any] = {
    **_ATTENDANCE,
    "home_address": {"lines": ["L" * 200] * 6, "postcode": "ZZ99 3ZZ"},
    "concern": "C" * 4000,
}


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


CASES = [
    BenchCase(
        "ctf-xml",
        CtfAdapter(),
        ctf(1),
        ctf(30),
        "CTF of 30 pupils: time parse_batch (parse refuses a file of more than one pupil)",
    ),
    BenchCase(
        "education-exclusion",
        ExclusionAdapter(),
        _json(_SUSPENSION),
        _json(_SUSPENSION_LARGE),
        "every text at its schema maximum, 10 recipients",
    ),
    BenchCase(
        "education-attendance-concern",
        AttendanceConcernAdapter(),
        _json(_ATTENDANCE),
        _json(_ATTENDANCE_LARGE),
        "4,000-character concern, six 200-character address lines",
    ),
]
