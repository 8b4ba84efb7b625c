"""The walkthrough client (`lre-client`): a letter's whole life through the public API."""
