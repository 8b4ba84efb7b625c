"""Webhook delivery: the next event of each due webhook, one at a time."""

from __future__ import annotations

from lre.server.services.webhooks import WebhookService


class WebhookDelivery:
    name = "webhooks"

    def __init__(self, webhooks: WebhookService) -> None:
        self._webhooks = webhooks

    def step(self) -> bool:
        return self._webhooks.deliver_one()
