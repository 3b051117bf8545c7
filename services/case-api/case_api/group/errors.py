from shared.errors import Conflict, NotFound, UnprocessableEntity


class MemberNotFound(NotFound):
    title = "Group member not found"


class MeetingNotFound(NotFound):
    title = "Meeting not found"


class InvalidMember(UnprocessableEntity):
    title = "Invalid group member"


class InvalidMeeting(UnprocessableEntity):
    title = "Invalid meeting"


class MeetingNotStarted(Conflict):
    title = "Meeting has not started"
