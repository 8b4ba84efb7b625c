"""A legal person's registration identifier (domain brief §9).

A company is identified by a registration number, not by its name: in France
the SIREN (9 digits, Luhn check) or the SIRET of one of its establishments
(the SIREN and 5 more digits, Luhn over the 14), except La Poste's
establishments (SIREN 356000000), whose SIRETs follow another rule (the sum
of the 14 digits is a multiple of 5; INSEE). Certificates carry the
identifier in organizationIdentifier (2.5.4.97) with EN 319 412-1 semantics:
a 3-letter scheme (NTR: national trade register, VAT, PSD, LEI), a 2-letter
country and a hyphen, then the national identifier ("NTRFR-552100554").

Identifiers are kept in that 2.5.4.97 form, so that the party's and a
certificate's compare without translation: a bare French number is read as
"NTRFR-<digits>". The French schemes are checked to their check digits; other
countries' numbers only for their shape, their registers' rules not being
known here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lre.server.domain.errors import InvalidArgument

LA_POSTE_SIREN = "356000000"
SCHEMES = ("NTR", "VAT", "PSD", "LEI")
_FORM = re.compile(
    r"^(?P<scheme>[A-Z]{3})(?P<country>[A-Z]{2}|XG)-(?P<number>[A-Z0-9.:/ -]{1,60})$"
)
# A national scheme of EN 319 412-1 5.1.4 c): two letters, a colon, the identifier.
_LOCAL = re.compile(r"^(?P<country>[A-Z]{2}):(?P<number>[A-Z0-9.:/ -]{1,60})$")
_SPACES = re.compile(r"[\s.]+")


def luhn(digits: str) -> bool:
    """The Luhn check (ISO/IEC 7812-1), as INSEE applies it to SIREN and SIRET."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def valid_siren(siren: str) -> bool:
    return len(siren) == 9 and siren.isdigit() and luhn(siren)


def valid_siret(siret: str) -> bool:
    """A SIRET: 14 digits, Luhn, except La Poste's establishments, whose SIRETs
    INSEE numbers so that the sum of the digits is a multiple of 5 (a Luhn
    check would refuse most of them)."""
    if len(siret) != 14 or not siret.isdigit():
        return False
    if siret.startswith(LA_POSTE_SIREN):
        # Its head office's SIRET (35600000000048) was numbered before the
        # rule and passes Luhn instead.
        return sum(int(c) for c in siret) % 5 == 0 or luhn(siret)
    return luhn(siret)


def french_vat_key(siren: str) -> str:
    """The two-digit key of a French intra-community VAT number (FRkk + SIREN)."""
    return f"{(12 + 3 * (int(siren) % 97)) % 97:02d}"


@dataclass(frozen=True)
class RegistrationId:
    """An identifier in the 2.5.4.97 form; ``siren`` when it names a French legal person."""

    scheme: str
    country: str
    number: str

    @property
    def value(self) -> str:
        if self.scheme == "":
            return f"{self.country}:{self.number}"
        return f"{self.scheme}{self.country}-{self.number}"

    @property
    def siren(self) -> str | None:
        """The French legal person it names, whatever the scheme: a SIRET names
        an establishment of its SIREN; a French VAT number embeds the SIREN."""
        if self.country != "FR":
            return None
        if self.scheme == "NTR":
            return self.number[:9]
        if self.scheme == "VAT":
            return self.number[2:]
        return None

    def same_legal_person(self, other: RegistrationId) -> bool:
        """Whether ``other`` (say, a certificate's organizationIdentifier) names
        the same legal person: by SIREN in France (a certificate naming the
        company by its SIREN or VAT number is the company of any of its
        SIRETs), else the same identifier."""
        if self.siren is not None and other.siren is not None:
            return self.siren == other.siren
        return self.value == other.value


def parse(text: str, field: str = "party.registration_id") -> RegistrationId:
    """A registration identifier as a caller or a certificate writes it:
    a bare SIREN or SIRET, or the 2.5.4.97 form. InvalidArgument, naming
    ``field``, when it is malformed or its check digits are wrong."""
    compact = _SPACES.sub("", text.strip()).upper()
    if compact.isdigit():
        compact = f"NTRFR-{compact}"
    local = _LOCAL.match(compact)
    if local:
        return RegistrationId("", local["country"], local["number"])
    match = _FORM.match(compact)
    if match is None:
        raise InvalidArgument(
            field,
            "a SIREN (9 digits), a SIRET (14 digits) or an identifier in the "
            "organizationIdentifier form (e.g. NTRFR-552100554, VATFR-...)",
        )
    scheme, country, number = match["scheme"], match["country"], match["number"]
    if scheme not in SCHEMES:
        raise InvalidArgument(field, f"the scheme must be one of {', '.join(SCHEMES)}")
    if (scheme == "LEI") != (country == "XG"):
        raise InvalidArgument(field, "an LEI is written LEIXG-, and only an LEI")
    if country == "FR" and scheme == "NTR":
        _check_french(number, field)
    elif country == "FR" and scheme == "VAT":
        siren = number[2:]
        if len(number) != 11 or not number.isdigit() or not valid_siren(siren):
            raise InvalidArgument(field, "a French VAT number is 2 key digits and a valid SIREN")
        if number[:2] != french_vat_key(siren):
            raise InvalidArgument(field, "the French VAT number's key is wrong")
    elif scheme == "LEI" and not _valid_lei(number):
        raise InvalidArgument(field, "an LEI is 20 characters with ISO 17442 check digits")
    return RegistrationId(scheme, country, number)


def _check_french(number: str, field: str) -> None:
    if not number.isdigit() or len(number) not in (9, 14):
        raise InvalidArgument(field, "a SIREN is 9 digits, a SIRET 14")
    if len(number) == 9 and not valid_siren(number):
        raise InvalidArgument(field, "the SIREN's check digit is wrong")
    if len(number) == 14 and not valid_siren(number[:9]):
        raise InvalidArgument(field, "the SIRET's SIREN has a wrong check digit")
    if len(number) == 14 and not valid_siret(number):
        raise InvalidArgument(field, "the SIRET's check digit is wrong")


def _valid_lei(lei: str) -> bool:
    """ISO 17442: 20 alphanumerics, ISO 7064 MOD 97-10 over the whole."""
    if len(lei) != 20 or not lei.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in lei)) % 97 == 1
