from shared.errors import NotFound, UnprocessableEntity


class WebhookNotFound(NotFound):
    title = "Webhook endpoint not found"


class InvalidWebhookUrl(UnprocessableEntity):
    title = "Webhook URL refused"
