"""What the worker does with each event it consumes: one module per kind of event, each giving
the consumer its routes (:class:`shared.consumer.Route`) with its dependencies passed in.

A handler runs inside the consumer's unit of work and never commits; raising rolls back the
whole message (including its inbox row) so it is redelivered.
"""
