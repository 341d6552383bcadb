"""ISO 3166-1 alpha-2 country codes: the only values a user's country may take."""

from __future__ import annotations

import re
from collections.abc import Iterable

from portability.errors import ValidationError

__all__ = ["ISO_COUNTRIES", "check_country", "parse_countries"]

#: Officially assigned ISO 3166-1 alpha-2 codes.
ISO_COUNTRIES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 (one line of codes reads better than 249 lines)
)
_CODE = re.compile(r"^[A-Z]{2}$", re.ASCII)


def check_country(value: str, field: str = "country") -> str:
    """The upper-case code, or ``ValidationError`` naming ``field``: two ASCII letters that
    ISO 3166-1 assigns (Cyrillic look-alikes and ``XX`` are refused)."""
    code = value.strip().upper() if isinstance(value, str) and value.isascii() else ""
    if not _CODE.match(code) or code not in ISO_COUNTRIES:
        raise ValidationError(f"{field} {value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def parse_countries(values: Iterable[str], field: str = "countries") -> list[str]:
    codes = [check_country(v, field) for v in values if v.strip()]
    if not codes:
        raise ValidationError(f"{field} is empty: give ISO codes such as DE,FR")
    return codes
