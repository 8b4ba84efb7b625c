"""The admission gate's budgets (lre.runtime.limits.Admission) alone: per
class, per caller, per user within a caller, and in all; a refusal names the
budget, and leaving frees exactly what entering took."""

from __future__ import annotations

from lre.runtime.limits import Admission, Kind, StreamLimits

LIMITS = StreamLimits(per_caller=3, per_user=2, watches=1, reflections=1)


def test_each_budget_refuses_in_its_turn() -> None:
    admission = Admission(LIMITS, streams=5)
    a1, _ = admission.enter(Kind.UPLOAD, "gateway", "alice")
    a2, _ = admission.enter(Kind.UPLOAD, "gateway", "alice")
    assert a1 and a2
    assert admission.enter(Kind.UPLOAD, "gateway", "alice") == (None, "user")
    b1, _ = admission.enter(Kind.UPLOAD, "gateway", "bob")
    assert b1
    assert admission.enter(Kind.UPLOAD, "gateway", "carol") == (None, "caller")
    # Another class of the same caller has its own budget.
    assert admission.enter(Kind.REFLECTION, "gateway", "")[0] is not None
    assert admission.enter(Kind.REFLECTION, "auditor", "") == (None, "class")
    watch, _ = admission.enter(Kind.WATCH, "auditor", "")
    assert watch is not None
    # Five long calls in all: the sixth is refused whatever its budgets say.
    assert admission.enter(Kind.DOWNLOAD, "portal", "dan") == (None, "all")
    admission.leave(a1)
    assert admission.enter(Kind.UPLOAD, "gateway", "alice")[0] is not None


def test_leaving_frees_what_entering_took() -> None:
    admission = Admission(LIMITS, streams=2)
    tickets = [admission.enter(Kind.DOWNLOAD, caller, "")[0] for caller in ("portal", "crm")]
    assert admission.enter(Kind.UPLOAD, "other", "") == (None, "all")
    for ticket in tickets:
        assert ticket is not None
        admission.leave(ticket)
    assert admission._counts == {}
    with admission.waiting("x") as first, admission.waiting("x") as second:
        assert (first, second) == (1, 2)
    assert admission._counts == {}
