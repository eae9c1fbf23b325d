"""Which instrument a driver accepts: each driver class declares ``IDENTITY``, an :class:`IdentitySpec`.

A driver's constructor sends nothing; whoever connects it (``labctl.station.Station``) calls
:func:`verify_identity` first, so a wrong instrument at the address (a lock-in where the source meter should
be, a web server, a closed port) is refused before any other command reaches it. An instrument that cannot
answer at all (the SR570 is listen-only) declares so with :meth:`IdentitySpec.listen_only`; nothing is sent
to verify it.

Accepted replies come from the instruments' manuals as the instrument reference quotes them (instruments ref.
§1.1, §2, §3, §4.2, §5, §8.3: the Keithley 2400 and 2450 manuals, the SR830 and SR570 manuals, the Cornerstone
260 manuals, the Thorlabs FW102C manual and SC10 console); the patterns match the manufacturer and model fields,
never serial numbers or firmware versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: longest part of an unexpected answer quoted in an error message (characters)
ANSWER_EXCERPT_CHARS = 100


@dataclass(frozen=True)
class IdentitySpec:
    """The identity query of an instrument and the answers a driver accepts.

    query: the identity query the driver sends (``*IDN?``, ``id?``, ``INFO?``); None: the instrument is
        listen-only and is not asked anything.
    accepts: regular expressions; a reply (blanks stripped) is accepted when one matches at its start,
        ignoring case. Each names a manufacturer and model field, e.g. ``KEITHLEY INSTRUMENTS INC\\.,MODEL 2400,``.
    expected: what an accepted reply looks like, in words, for error messages.
    """

    query: str | None
    accepts: tuple[str, ...]
    expected: str

    @classmethod
    def listen_only(cls, description: str) -> IdentitySpec:
        """An instrument without any identity query (it never replies); ``description`` stands for its identity."""
        return cls(query=None, accepts=(), expected=description)

    @property
    def is_listen_only(self) -> bool:
        return self.query is None

    def matches(self, reply: str) -> bool:
        """Whether ``reply`` is one of the accepted identities (always False for a listen-only instrument)."""
        text = reply.strip()
        return any(re.match(pattern, text, flags=re.IGNORECASE) for pattern in self.accepts)


class IdentityError(RuntimeError):
    """The instrument did not answer its identity query, or answered with an identity the driver does not accept.

    query: what was asked; expected: :attr:`IdentitySpec.expected`; answer: what came back, quoted for printing
    (None: no answer); failure: how the exchange failed when there was no answer.
    """

    def __init__(self, query: str, expected: str, answer: str | None = None, failure: str = "") -> None:
        self.query, self.expected, self.answer, self.failure = query, expected, answer, failure
        if answer is None:
            super().__init__(f"no answer to {query!r} ({failure}); expected {expected!r}")
        else:
            super().__init__(f"it answered {query!r} with {answer}; expected {expected!r}")

    @property
    def answered(self) -> bool:
        """True: something answered, and it is not an accepted identity; False: nothing usable came back."""
        return self.answer is not None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def quote_answer(reply: str) -> str:
    """A reply as it appears in an error message: stripped, quoted with repr (control bytes visible), truncated."""
    text = reply.strip()
    if len(text) > ANSWER_EXCERPT_CHARS:
        return repr(text[:ANSWER_EXCERPT_CHARS]) + "..."
    return repr(text)


def identity_spec(driver: type) -> IdentitySpec:
    """The :class:`IdentitySpec` a driver class declares (TypeError if it declares none)."""
    spec = getattr(driver, "IDENTITY", None)
    if not isinstance(spec, IdentitySpec):
        raise TypeError(f"driver {driver.__name__} declares no IDENTITY (an IdentitySpec)")
    return spec


def verify_identity(instrument: Any) -> str:
    """Ask ``instrument`` its identity query through its own framing (its ``id``) and check the answer.

    Returns the reply (stripped), or for a listen-only instrument its declared description without sending
    anything. Raises :class:`IdentityError` when the answer is not accepted or the exchange fails; either way
    nothing else has been sent.
    """
    spec = identity_spec(type(instrument))
    if spec.is_listen_only:
        return spec.expected
    assert spec.query is not None
    try:
        reply = str(instrument.id)
    except Exception as exc:  # noqa: BLE001 - a timeout, a broken echo, a closed peer: all "no identity"
        raise IdentityError(spec.query, spec.expected, failure=f"{type(exc).__name__}: {_one_line(str(exc))}") from exc
    if not spec.matches(reply):
        raise IdentityError(spec.query, spec.expected, answer=quote_answer(reply))
    return reply.strip()
