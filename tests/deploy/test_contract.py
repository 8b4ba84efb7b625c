"""The to-come lists only shrink: a name the code now has must leave them."""

from __future__ import annotations

from tests.support import contract


def test_settings_still_to_come_are_not_there_yet() -> None:
    for section, names in contract.SETTINGS_TO_COME.items():
        landed = names & contract.fields(section)
        assert not landed, f"remove {sorted(landed)} from SETTINGS_TO_COME[{section!r}]"


def test_commands_still_to_come_are_not_there_yet() -> None:
    for program, command in contract.COMMANDS_TO_COME:
        assert command not in contract.subcommands(program), (
            f"remove ({program!r}, {command!r}) from COMMANDS_TO_COME"
        )


def test_unknown_names_are_caught() -> None:
    assert contract.unknown_env({"LRE_SERVER_GRPC_ADRESS", "LRE_SERVER_GRPC_ADDRESS"}) == {
        "LRE_SERVER_GRPC_ADRESS"
    }
    assert contract.unknown_command(["lre-server", "serve"]) is None
    assert contract.unknown_command(["lre-server", "srve"])
