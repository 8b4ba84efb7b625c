"""NotificationService over gRPC. VerifyNotification is implemented; bounces,
webhooks, the event stream and listing answer UNIMPLEMENTED for now."""

from __future__ import annotations

import grpc

from lre.v1 import notification_pb2, notification_pb2_grpc
from server.api.convert import timestamp
from server.api.errors import domain_errors
from server.domain.errors import InvalidArgument
from server.services.notification import NotificationService


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, notifications: NotificationService) -> None:
        self._notifications = notifications

    def VerifyNotification(
        self, request: notification_pb2.VerifyNotificationRequest, context: grpc.ServicerContext
    ) -> notification_pb2.VerifyNotificationResponse:
        with domain_errors(context):
            if not request.letter_reference or len(request.letter_reference) > 64:
                raise InvalidArgument("letter_reference", "required, at most 64 characters")
            if len(request.verification_code) > 64:
                raise InvalidArgument("verification_code", "at most 64 characters")
            result = self._notifications.verify(request.letter_reference, request.verification_code)
            return notification_pb2.VerifyNotificationResponse(
                genuine=result.genuine, acceptance_deadline=timestamp(result.acceptance_deadline)
            )
