"""Every string of a request, checked before a servicer sees it: no control
characters, a bounded length, and a field's own parser where it has one.

A NUL reaching PostgreSQL, or a name longer than its column, used to fail in
the database as INTERNAL; a line break in a name would reach e-mail headers
and evidence. Rules are by the field's full protobuf name
("lre.v1.Party.email"); a field without one gets ``DEFAULT``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
# bidirectional overrides and isolates (text that reads differently than it is).
_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Free text (a refusal's reason, a bounce diagnostic) keeps tab and line breaks.
_MULTI_LINE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)

DEFAULT_MAX_LENGTH = 1024


@dataclass(frozen=True)
class Rule:
    """``parse`` returns what is wrong with a value, or None when it is good."""

    max_length: int = DEFAULT_MAX_LENGTH
    multiline: bool = False
    parse: Callable[[str], str | None] | None = None


DEFAULT = Rule()
Rules = Mapping[str, Rule]


def _string_problem(value: str, rule: Rule) -> str | None:
    if len(value) > rule.max_length:
        return f"at most {rule.max_length} characters"
    if (_MULTI_LINE if rule.multiline else _SINGLE_LINE).search(value):
        return "must not contain control characters"
    if rule.parse is not None and value:
        return rule.parse(value)
    return None


def violations(message: Message, rules: Rules, prefix: str = "") -> dict[str, str]:
    """Field path ("envelope.parts[1].filename") to what is wrong with it, for
    every string of ``message`` and of the messages inside it."""
    found: dict[str, str] = {}
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                items = [(f"{path}[{k!r}]", v) for k, v in value.items()]
                for key_path, item in items:
                    if isinstance(item, Message):
                        found.update(violations(item, rules, f"{key_path}."))
                continue
            children = (
                [(f"{path}[{i}]", m) for i, m in enumerate(value)] if repeated else [(path, value)]
            )
            for child_path, child in children:
                found.update(violations(child, rules, f"{child_path}."))
        elif field.type == FieldDescriptor.TYPE_STRING:
            rule = rules.get(field.full_name, DEFAULT)
            strings = (
                [(f"{path}[{i}]", s) for i, s in enumerate(value)] if repeated else [(path, value)]
            )
            for string_path, string in strings:
                problem = _string_problem(string, rule)
                if problem is not None:
                    found[string_path] = problem
    return found


def validator(rules: Rules | None = None) -> Callable[[Message], dict[str, str]]:
    """What the gRPC process runs on every request message it decodes."""
    chosen: Rules = rules or {}
    return lambda message: violations(message, chosen)
