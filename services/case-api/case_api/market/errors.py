from shared.errors import Conflict, Forbidden, NotFound, UnprocessableEntity


class ProviderNotFound(NotFound):
    title = "Provider not found"


class SessionNotFound(NotFound):
    title = "Session not found"


class RequestNotFound(NotFound):
    title = "Request not found"


class AppointmentNotFound(NotFound):
    title = "Appointment not found"


class UnitNotFound(NotFound):
    title = "Unit not found"


class UnitOutsideScope(Forbidden):
    title = "Unit outside your scope"


class InvalidMarketChange(UnprocessableEntity):
    title = "Invalid service market change"


class SessionFull(Conflict):
    title = "Session is full"


class InmateDoubleBooked(Conflict):
    title = "Inmate already booked at that time"


class SessionCancelled(Conflict):
    title = "Session is cancelled"


class IllegalAppointmentTransition(Conflict):
    title = "Illegal appointment transition"


class CaseNotInUnit(Conflict):
    title = "Case is not in the session's unit"
