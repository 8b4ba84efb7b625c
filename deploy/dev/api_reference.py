"""The API reference (docs/api-reference.md), generated from the protos and
their comments: `make api-reference` writes it, `--check` says whether the
file is current (a test runs it)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = ROOT / "docs" / "api-reference.md"
PACKAGE = "lre.v1"
# Paths in a FileDescriptorProto (descriptor.proto's field numbers).
MESSAGE, ENUM, SERVICE = 4, 5, 6
FIELD, NESTED, NESTED_ENUM, METHOD, VALUE = 2, 3, 4, 2, 2
SCALARS = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()
}

HEADER = """# API reference

Generated from `protos/lre/v1/` and their comments by `make api-reference`
(a test fails while it is not current): every service, method, message and
enumeration. What the calls guarantee, their errors and their deadlines:
[API](api.md).
"""


def descriptors() -> descriptor_pb2.FileDescriptorSet:
    """The protos compiled with their comments (source info)."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "set.pb"
        files = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "lre" / "v1").glob("*.proto"))
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", "--include_source_info",
             f"--descriptor_set_out={out}", *files],
            check=True,
        )  # fmt: skip
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comments(proto: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {
        tuple(location.path): " ".join(location.leading_comments.split())
        for location in proto.source_code_info.location
        if location.leading_comments.strip()
    }


def _anchor(name: str) -> str:
    """The heading id mkdocs gives a heading of this text."""
    return "".join(c for c in name.lower() if c.isalnum() or c in "-_")


def _type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type_name:
        name = field.type_name.lstrip(".")
        short = name.removeprefix(PACKAGE + ".")
        shown = f"[`{short}`](#{_anchor(short)})" if short != name else f"`{name}`"
    else:
        shown = f"`{SCALARS[field.type]}`"
    if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        return f"repeated {shown}"
    return f"optional {shown}" if field.proto3_optional else shown


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _message(
    lines: list[str],
    message: descriptor_pb2.DescriptorProto,
    prefix: str,
    path: tuple[int, ...],
    comments: dict[tuple[int, ...], str],
) -> None:
    name = f"{prefix}{message.name}"
    if message.options.map_entry:
        return
    lines += ["", f"### {name}", ""]
    if comments.get(path):
        lines += [comments[path], ""]
    # map<K, V> fields are repeated entries of a nested message, shown as maps.
    maps = {
        f".{PACKAGE}.{name}.{n.name}": n.field for n in message.nested_type if n.options.map_entry
    }
    if message.field:
        lines += ["| Field | Number | Type | Description |", "| --- | --- | --- | --- |"]
        for i, field in enumerate(message.field):
            text = comments.get((*path, FIELD, i), "")
            entry = maps.get(field.type_name)
            kind = f"map<{_type(entry[0])}, {_type(entry[1])}>" if entry else _type(field)
            lines.append(f"| `{field.name}` | {field.number} | {kind} | {_cell(text)} |")
    for i, nested in enumerate(message.nested_type):
        _message(lines, nested, f"{name}.", (*path, NESTED, i), comments)
    for i, enum in enumerate(message.enum_type):
        _enum(lines, enum, f"{name}.", (*path, NESTED_ENUM, i), comments)


def _enum(
    lines: list[str],
    enum: descriptor_pb2.EnumDescriptorProto,
    prefix: str,
    path: tuple[int, ...],
    comments: dict[tuple[int, ...], str],
) -> None:
    lines += ["", f"### {prefix}{enum.name}", ""]
    if comments.get(path):
        lines += [comments[path], ""]
    lines += ["| Value | Number | Description |", "| --- | --- | --- |"]
    for i, value in enumerate(enum.value):
        text = comments.get((*path, VALUE, i), "")
        lines.append(f"| `{value.name}` | {value.number} | {_cell(text)} |")


def render(files: descriptor_pb2.FileDescriptorSet) -> str:
    lines = [HEADER.rstrip("\n")]
    ours = [f for f in files.file if f.package == PACKAGE]
    for proto in ours:
        comments = _comments(proto)
        for s, service in enumerate(proto.service):
            lines += ["", f"## {service.name}", "", f"`{PACKAGE}.{service.name}` ({proto.name})"]
            if comments.get((SERVICE, s)):
                lines += ["", comments[(SERVICE, s)]]
            for m, method in enumerate(service.method):
                request = method.input_type.lstrip(".").removeprefix(PACKAGE + ".")
                reply = method.output_type.lstrip(".").removeprefix(PACKAGE + ".")
                into = "stream " if method.client_streaming else ""
                back = "stream " if method.server_streaming else ""
                lines += [
                    "",
                    f"### {service.name}.{method.name}",
                    "",
                    f"{into}[`{request}`](#{_anchor(request)}) → "
                    f"{back}[`{reply}`](#{_anchor(reply)})",
                ]
                if comments.get((SERVICE, s, METHOD, m)):
                    lines += ["", comments[(SERVICE, s, METHOD, m)]]
    lines += ["", "## Messages and enumerations"]
    for proto in ours:
        comments = _comments(proto)
        for i, message in enumerate(proto.message_type):
            _message(lines, message, "", (MESSAGE, i), comments)
        for i, enum in enumerate(proto.enum_type):
            _enum(lines, enum, "", (ENUM, i), comments)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current")
    args = parser.parse_args()
    text = render(descriptors())
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is not current: run `make api-reference`")
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
